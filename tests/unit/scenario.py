"""A small driver for unit tests: events at offsets from a fixed start, through a real Engine.

Tests read like a timeline: ``s.add_to_cart("c1", 0, sku="A"); s.advance(minutes(30))`` and then
assert on ``s.transitions("c1", "cart_abandoner")``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import msgspec

from streams.engine import Engine
from streams.model.changes import SegmentChange
from streams.model.clock import DAY, HOUR, MINUTE, SECOND, format_instant, parse_instant
from streams.model.events import BadEvent
from streams.model.limits import DEFAULT_LIMITS, Limits
from streams.rules.load import load_pack
from streams.rules.pack import RulePack

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RULES = ROOT / "rules"
START = parse_instant("2026-03-01T00:00:00Z")

_default_pack: RulePack | None = None


def default_pack() -> RulePack:
    global _default_pack
    if _default_pack is None:
        _default_pack = load_pack(DEFAULT_RULES)
    return _default_pack


def seconds(n: float) -> int:
    return round(n * SECOND)


def minutes(n: float) -> int:
    return round(n * MINUTE)


def hours(n: float) -> int:
    return round(n * HOUR)


def days(n: float) -> int:
    return round(n * DAY)


def iso(offset: int) -> str:
    return format_instant(START + offset)


def event(type_: str, at: int, customer: str | None = None, *, anonymous: str | None = None,
          event_id: str | None = None, device: str | None = None, **properties: Any) -> bytes:
    body: dict[str, Any] = {"event_id": event_id or f"{type_}-{customer}-{anonymous}-{at}-{next(_ids)}",
                            "type": type_, "ts": iso(at)}
    if customer is not None:
        body["customer_id"] = customer
    if anonymous is not None:
        body["anonymous_id"] = anonymous
    if device is not None:
        body["device"] = device
    if properties:
        body["properties"] = properties
    return msgspec.json.encode(body)


_ids = itertools.count()


class Scenario:
    def __init__(self, pack: RulePack | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
        self.engine = Engine(pack or default_pack(), limits=limits)
        self.log: list[SegmentChange] = []
        self.bad: list[BadEvent] = []

    def send(self, raw: bytes) -> list[SegmentChange]:
        result = self.engine.process_bytes(raw, where="test")
        if isinstance(result, BadEvent):
            self.bad.append(result)
            return []
        self.log += result
        return result

    def __getattr__(self, type_: str) -> Any:
        """``s.add_to_cart("c1", at, sku="A")`` sends an event of that type."""
        if type_.startswith("_"):
            raise AttributeError(type_)

        def send(customer: str | None, at: int, **kwargs: Any) -> list[SegmentChange]:
            return self.send(event(type_, at, customer, **kwargs))

        return send

    def advance(self, to: int) -> list[SegmentChange]:
        new = self.engine.advance(START + to)
        self.log += new
        return new

    def transitions(self, customer: str, segment: str) -> list[tuple[str, str]]:
        return [(c.change, c.at) for c in self.log if c.customer_id == customer and c.segment == segment]

    def members(self, customer: str) -> list[str]:
        state = self.engine.states.get(customer)
        return [] if state is None else state.memberships()
