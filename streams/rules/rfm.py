"""RFM, the way practitioners score customers: recency (time since the last order), frequency
(orders) and monetary value (order totals) over a horizon, each scored 1 to 5 (5 is best) by
four cut points set in the pack (docs/rules.md, RFM)::

    [rfm]
    horizon = "365d"
    recency = ["14d", "30d", "60d", "120d"]   # under 14 days scores 5, ..., 120 days or more 1
    frequency = [2, 3, 4, 6]                  # orders in the horizon: 6 or more scores 5, under 2 1
    monetary = [60, 150, 300, 600]            # order totals in the horizon: 600 or more scores 5

Rules read ``rfm_r``, ``rfm_f``, ``rfm_m`` (the scores) and ``rfm_frequency``, ``rfm_monetary``
(the values). Frequency and monetary value are two windows the pack keeps over the horizon, so
they fall as orders age out; recency's score falls at exact instants after the last order. Both
are deadlines like any other, so a score changes when time alone changes it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from streams.model.clock import DAY, Duration, format_duration, parse_duration
from streams.rules.compiled import Expr
from streams.rules.fields import NUMBER, Field
from streams.rules.pack import WindowDef
from streams.rules.specs import RfmSpec

ORDERS = "rfm_orders"
SPEND = "rfm_spend"
"""The windows RFM keeps (names a pack may not give its own windows)."""
_CHANGED_BY = frozenset({"order_completed", "identify"})


@dataclass(frozen=True)
class Rfm:
    horizon: Duration
    recency: tuple[Duration, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]

    @property
    def definition(self) -> str:
        return (f"horizon={self.horizon} recency={list(self.recency)} frequency={list(self.frequency)} "
                f"monetary={list(self.monetary)}")

    def windows(self, total: Expr) -> dict[str, WindowDef]:
        """The two windows over the horizon; ``total`` is the order's total, compiled."""
        events = ("order_completed",)
        return {
            ORDERS: WindowDef(ORDERS, events, self.horizon, "count", None, None,
                              "RFM: orders in the horizon", f"rfm orders over={self.horizon}"),
            SPEND: WindowDef(SPEND, events, self.horizon, "sum", None, total,
                             "RFM: order totals in the horizon", f"rfm spend over={self.horizon}"),
        }

    def fields(self, windows: dict[str, WindowDef]) -> dict[str, tuple[Field, Callable[[Any], int | None] | str]]:
        """Each field rules may read, with when its value next changes with no event."""
        orders, spend = windows[ORDERS], windows[SPEND]
        out: dict[str, tuple[Field, Callable[[Any], int | None] | str]] = {}
        for name, window, cuts, doc in (
                ("frequency", orders, self.frequency, "orders in the RFM horizon"),
                ("monetary", spend, self.monetary, "order totals in the RFM horizon")):
            aggregate = window.field()
            value = aggregate.get
            out[f"rfm_{name}"] = (Field(f"rfm_{name}", NUMBER, value, doc, _CHANGED_BY, aggregate.code),
                                  window.next_code())
            out[f"rfm_{name[0]}"] = (Field(f"rfm_{name[0]}", NUMBER, _score(value, cuts),
                                           f"RFM {name} score, 1 to 5", _CHANGED_BY), window.next_code())
        out["rfm_r"] = (Field("rfm_r", NUMBER, self._recency_score, "RFM recency score, 1 to 5 (null "
                              "before the first order)", _CHANGED_BY), self._recency_next)
        return out

    def _recency_score(self, state: Any) -> int | None:
        last = state.last_order_at
        if last is None:
            return None
        return 5 - bisect.bisect_right(self.recency, state.clock - last)

    def _recency_next(self, state: Any) -> int | None:
        last = state.last_order_at
        if last is None:
            return None
        passed = bisect.bisect_right(self.recency, state.clock - last)
        return last + self.recency[passed] if passed < len(self.recency) else None


STAND_IN = Rfm(365 * DAY, tuple(d * DAY for d in (1, 2, 3, 4)), (1, 2, 3, 4), (1, 2, 3, 4))
"""Fields for the rules to compile against when ``[rfm]`` is wrong (the pack is refused anyway)."""


def _score(value: Callable[[Any], Any], cuts: tuple[float, ...]) -> Callable[[Any], int]:
    def score(state: Any) -> int:
        return 1 + bisect.bisect_right(cuts, value(state) or 0)

    return score


def parse(spec: RfmSpec) -> Rfm:
    """The pack's ``[rfm]``, or ValueError saying what is wrong with it."""
    horizon = parse_duration(spec.horizon)
    if horizon <= 0:
        raise ValueError(f"rfm.horizon {spec.horizon!r}: frequency and monetary value need a horizon above 0")
    recency = tuple(parse_duration(text) for text in spec.recency)
    for name, cuts in (("recency", recency), ("frequency", spec.frequency), ("monetary", spec.monetary)):
        if (len(cuts) != 4 or any(b <= a for a, b in pairwise(cuts))
                or not all(0 < c < math.inf if name == "recency" else 0 <= c < math.inf for c in cuts)):
            raise ValueError(f"rfm.{name}: four cut points, each above the one before (they part scores "
                             f"1 to 5), finite and {'above' if name == 'recency' else 'at least'} 0, not "
                             f"{list(cuts) if name != 'recency' else spec.recency}")
    return Rfm(horizon, recency, tuple(spec.frequency), tuple(spec.monetary))


def suggest(values: dict[str, list[float]], horizon: Duration) -> str:
    """``[rfm]`` with cut points at the quintiles of ``values`` (recency in microseconds,
    frequency, monetary: one of each per customer with an order), as TOML."""
    def quintiles(items: list[float]) -> list[float]:
        ordered = sorted(items)
        return [ordered[min(len(ordered) - 1, len(ordered) * k // 5)] for k in (1, 2, 3, 4)]

    day = parse_duration("1d")
    recency = _ascending([max(1, -(-q // day)) for q in quintiles(values["recency"])], 1)
    frequency = _ascending([max(1, round(q)) for q in quintiles(values["frequency"])], 1)
    monetary = _ascending([round(q, 2) for q in quintiles(values["monetary"])], 0.01)
    return "\n".join([
        "[rfm]",
        f'horizon = "{format_duration(horizon)}"',
        "recency = [" + ", ".join(f'"{int(d)}d"' for d in recency) + "]",
        "frequency = [" + ", ".join(f"{int(f)}" for f in frequency) + "]",
        "monetary = [" + ", ".join(f"{m:g}" for m in monetary) + "]",
    ]) + "\n"


def _ascending(cuts: list[float], step: float) -> list[float]:
    """Cut points made strictly ascending (ties of a skewed distribution moved up by ``step``)."""
    out: list[float] = []
    for cut in cuts:
        out.append(cut if not out or cut > out[-1] else round(out[-1] + step, 2))
    return out
