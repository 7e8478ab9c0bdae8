"""``segmenter backtest``: what a rule pack would have done over a history, per segment.

A :class:`Backtest` is fed the segment changes the engine emits, in the order it emits them,
and :meth:`Backtest.report` sums them up: who entered and how often, how long stays lasted,
how big each segment was over time, and how much the segments overlap. It is pure (changes in,
numbers out), so tests can hand it a few changes; :func:`backtest_file` is the driver that
runs the replay engine over a JSONL file, and :mod:`streams.offline.report` draws the report.

Overlap is measured in member-time (customer x time): for segments A and B, the share of all
the time customers spent in A that they spent in B as well. A segment with at least
:data:`NOT_DISTINCT` of its member-time inside another adds nobody to it: "not distinct".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from streams.engine import Engine
from streams.engine.activate import POLICIES
from streams.model.activations import SEND, Activation
from streams.model.changes import ENTERED, EXITED, SegmentChange
from streams.model.clock import DAY, Duration, Instant, parse_instant
from streams.model.events import BadEvent
from streams.model.windows import total
from streams.offline.replay import Summary, latest_accepted, run
from streams.rules import rfm
from streams.rules.deployments import Scheduled
from streams.rules.pack import RulePack

NOT_DISTINCT = 0.95
"""A segment whose member-time is at least this share inside another is flagged."""


@dataclass(frozen=True)
class SegmentReport:
    name: str
    entrants: int
    """Customers who entered at least once."""
    entries: int
    reentrants: int
    """Entrants who entered two or more times."""
    completed: int
    """Stays that ended (an exit) before the end of the history."""
    median_stay: Duration | None
    p90_stay: Duration | None
    """Of completed stays; None when there are none."""
    inside_at_end: int
    """Members at the end: stays still open, which is also the segment's size at the end."""
    peak: int
    peak_at: Instant | None
    """The first instant the segment reached its peak size."""
    member_time: Duration
    """Customer x time spent in the segment, open stays counted up to the end."""

    @property
    def reentry_share(self) -> float | None:
        return self.reentrants / self.entrants if self.entrants else None


@dataclass(frozen=True)
class Overlap:
    segment: str
    other: str
    time_share: float
    """Share of ``segment``'s member-time during which the customer was also in ``other``."""
    customer_share: float
    """Share of ``segment``'s entrants who were in both at once, for some positive time."""

    @property
    def not_distinct(self) -> bool:
        return self.time_share >= NOT_DISTINCT


@dataclass(frozen=True)
class Report:
    start: Instant | None
    """The first change, or None when there were none."""
    end: Instant | None
    """Where open stays are measured up to: the clock at the end of the replay."""
    segments: list[SegmentReport]
    overlaps: list[Overlap]
    """Every ordered pair that shared member-time or customers, largest time share first."""
    sizes: dict[str, list[tuple[Instant, int]]]
    """Per segment, its size after each instant at which it changed, in time order."""
    anomalies: int = 0
    """Changes that broke the entered/exited alternation (docs/contract.md, Output) and were ignored."""

    def segment(self, name: str) -> SegmentReport:
        for report in self.segments:
            if report.name == name:
                return report
        raise KeyError(name)

    def overlap(self, segment: str, other: str) -> Overlap | None:
        for pair in self.overlaps:
            if pair.segment == segment and pair.other == other:
                return pair
        return None

    def not_distinct(self) -> list[Overlap]:
        return [pair for pair in self.overlaps if pair.not_distinct]


@dataclass
class _Segment:
    entries: Counter[str] = field(default_factory=Counter)
    """Customer -> number of entries."""
    stays: list[Duration] = field(default_factory=list)
    deltas: list[tuple[Instant, int]] = field(default_factory=list)


class Backtest:
    """Feed it changes with :meth:`add`, in the engine's order; then call :meth:`report`."""

    def __init__(self, segments: Iterable[str] = ()) -> None:
        self._segments: dict[str, _Segment] = {name: _Segment() for name in segments}
        self._members: dict[str, dict[str, Instant]] = {}
        """Customer -> {segment: entered at}, for customers in at least one segment."""
        self._last: dict[str, Instant] = {}
        """Customer -> time of its last change, up to which its member-time is counted."""
        self._time: Counter[tuple[str, str]] = Counter()
        """(A, B) -> member-time in both A and B; (A, A) is A's member-time."""
        self._together: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self._start: Instant | None = None
        self._latest: Instant | None = None
        self._anomalies = 0

    def add(self, change: SegmentChange) -> None:
        self.record(change.customer_id, change.segment, change.change, parse_instant(change.at))

    def record(self, customer: str, segment: str, change: str, at: Instant) -> None:
        if change not in (ENTERED, EXITED):
            raise ValueError(f"change must be {ENTERED!r} or {EXITED!r}, not {change!r}")
        seg = self._segments.get(segment)
        if seg is None:
            seg = self._segments[segment] = _Segment()
        members = self._members.setdefault(customer, {})
        last = self._last.get(customer)
        if last is not None:
            # A customer's changes never go back in time (docs/contract.md, Time); hold to that if a stream does.
            at = max(at, last)
            self._accrue(customer, members, at - last, self._time, self._together)
        self._last[customer] = at
        self._start = at if self._start is None else min(self._start, at)
        self._latest = at if self._latest is None else max(self._latest, at)
        if change == ENTERED:
            if segment in members:
                self._anomalies += 1
                return
            members[segment] = at
            seg.entries[customer] += 1
            seg.deltas.append((at, 1))
        else:
            entered = members.pop(segment, None)
            if entered is None:
                self._anomalies += 1
            else:
                seg.stays.append(at - entered)
                seg.deltas.append((at, -1))
        if not members:
            del self._members[customer]
            del self._last[customer]

    @staticmethod
    def _accrue(customer: str, members: dict[str, Instant], span: Duration,
                time: Counter[tuple[str, str]], together: defaultdict[tuple[str, str], set[str]]) -> None:
        """The customer spent ``span`` in ``members``. Only a positive span makes them "in both at
        once": one event that moves a customer from A to B (an order: out of new_visitor, into
        first_time_buyer) emits both changes at one instant, and that is no overlap."""
        if span <= 0 or not members:
            return
        for a in members:
            for b in members:
                time[a, b] += span
                if a != b:
                    together[a, b].add(customer)

    def report(self, end: Instant | None = None) -> Report:
        """The numbers so far, open stays counted up to ``end`` (default: the latest change)."""
        if end is None or (self._latest is not None and end < self._latest):
            end = self._latest
        time = Counter(self._time)
        open_together: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        if end is not None:
            for customer, members in self._members.items():
                self._accrue(customer, members, end - self._last[customer], time, open_together)
        together = {pair: len(customers) for pair, customers in self._together.items()}
        for pair, customers in open_together.items():
            before = self._together.get(pair, set())
            together[pair] = together.get(pair, 0) + sum(1 for c in customers if c not in before)
        segments = [self._segment_report(name, seg, time[name, name]) for name, seg in self._segments.items()]
        entrants = {s.name: s.entrants for s in segments}
        overlaps: list[Overlap] = []
        for a in self._segments:
            for b in self._segments:
                if a == b:
                    continue
                shared, both = time[a, b], together.get((a, b), 0)
                if shared == 0 and both == 0:
                    continue
                own = time[a, a]
                overlaps.append(Overlap(a, b, shared / own if own else 0.0,
                                        both / entrants[a] if entrants[a] else 0.0))
        overlaps.sort(key=lambda o: (-o.time_share, -o.customer_share, o.segment, o.other))
        sizes = {name: _sizes(seg.deltas) for name, seg in self._segments.items()}
        return Report(self._start, end, segments, overlaps, sizes, self._anomalies)

    def _segment_report(self, name: str, seg: _Segment, member_time: Duration) -> SegmentReport:
        stays = sorted(seg.stays)
        sizes = _sizes(seg.deltas)
        peak, peak_at = 0, None
        for at, size in sizes:
            if size > peak:
                peak, peak_at = size, at
        return SegmentReport(
            name=name,
            entrants=len(seg.entries),
            entries=sum(seg.entries.values()),
            reentrants=sum(1 for n in seg.entries.values() if n >= 2),
            completed=len(stays),
            median_stay=percentile(stays, 0.5),
            p90_stay=percentile(stays, 0.9),
            inside_at_end=sizes[-1][1] if sizes else 0,
            peak=peak,
            peak_at=peak_at,
            member_time=member_time,
        )


def _sizes(deltas: list[tuple[Instant, int]]) -> list[tuple[Instant, int]]:
    """The size after each instant; changes at one instant count together (stable by time)."""
    points: list[tuple[Instant, int]] = []
    size = 0
    for at, delta in sorted(deltas, key=lambda d: d[0]):
        size += delta
        if points and points[-1][0] == at:
            points[-1] = (at, size)
        else:
            points.append((at, size))
    return points


def percentile(ordered: list[Duration], q: float) -> Duration | None:
    """Linear interpolation between closest ranks (numpy's default); ``ordered`` is sorted."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def backtest(changes: Iterable[SegmentChange], segments: Iterable[str] = (), end: Instant | None = None,
             ) -> Report:
    """The report of a finished stream of changes."""
    bt = Backtest(segments)
    for change in changes:
        bt.add(change)
    return bt.report(end)


AGAIN_WITHIN = 7 * DAY
"""An activation "again" went to a customer who had one for the same segment this recently."""


@dataclass
class Activations:
    """What the activations of a history came to, per channel and segment: messages that went
    out, were held by quiet hours, were cancelled before they went, or were suppressed by each
    policy; and how often the same customer got another one."""

    sends: defaultdict[tuple[str, str], dict[str, tuple[str, Instant]]] = field(
        default_factory=lambda: defaultdict(dict))
    """(channel, segment) -> activation_id -> (customer, send_at) of the messages not cancelled."""
    cancelled: Counter[tuple[str, str]] = field(default_factory=Counter)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(policy or "held", segment, channel) -> count, from the engine."""

    def add(self, activation: Activation) -> None:
        where = (activation.channel, activation.segment)
        if activation.action == SEND:
            self.sends[where][activation.activation_id] = (activation.customer_id, parse_instant(activation.send_at))
        elif self.sends[where].pop(activation.activation_id, None) is not None:
            self.cancelled[where] += 1

    def sent(self, where: tuple[str, str]) -> int:
        return len(self.sends.get(where, ()))

    def again(self, where: tuple[str, str]) -> tuple[float, float] | None:
        """Of the messages that went out, the share that reached a customer who had had one for
        this segment within :data:`AGAIN_WITHIN`; of the customers, the share who had 2 or more."""
        times: defaultdict[str, list[Instant]] = defaultdict(list)
        for customer, at in self.sends.get(where, {}).values():
            times[customer].append(at)
        if not times:
            return None
        soon = 0
        for ats in times.values():
            ats.sort()
            soon += sum(1 for before, after in pairwise(ats) if after - before < AGAIN_WITHIN)
        return soon / self.sent(where), sum(1 for ats in times.values() if len(ats) > 1) / len(times)

    def table(self) -> str:
        rows = sorted({w for w, sends in self.sends.items() if sends} | set(self.cancelled)
                      | {(c, s) for _, s, c in self.counts})
        if not rows:
            return "Activations: the pack feeds no channel.\n"
        policies = [*POLICIES, *sorted({p for p, _, _ in self.counts} - {"held", *POLICIES})]
        head = (f"{'channel':8} {'segment':22} {'sent':>7} {'held':>6} {'cancel':>6} {'again':>6} {'2+':>6}  "
                + " ".join(f"{p:>9}" for p in policies))
        lines = ["Activations: sent (went out), held by quiet hours, cancelled before they went; again: share of",
                 "those sent that reached a customer who had one for the segment in the 7 days before; 2+: share",
                 "of the customers who had two or more; then, per policy, the activations it suppressed.",
                 head]
        for channel, segment in rows:
            where = (channel, segment)
            again = self.again(where)
            soon, many = ("-", "-") if again is None else (f"{again[0]:.1%}", f"{again[1]:.1%}")
            lines.append(
                f"{channel:8} {segment:22} {self.sent(where):>7,} {self.counts['held', segment, channel]:>6,} "
                f"{self.cancelled[where]:>6,} {soon:>6} {many:>6}  "
                + " ".join(f"{self.counts[p, segment, channel]:>9,}" for p in policies))
        return "\n".join(lines) + "\n"


def rfm_values(engine: Engine) -> tuple[dict[str, list[float]], Duration | None]:
    """Recency, frequency and monetary value of every customer with an order, at the end of the
    history, for :func:`streams.rules.rfm.suggest`; and the pack's RFM horizon (None when the
    pack has no ``[rfm]``: then frequency and monetary value are over the whole history)."""
    window = engine.pack.windows.get(rfm.ORDERS)
    end = engine.clock or 0
    values: dict[str, list[float]] = {"recency": [], "frequency": [], "monetary": []}
    for state in engine.states.values():
        if not state.identified or state.last_order_at is None:
            continue
        values["recency"].append(end - state.last_order_at)
        if window is None:
            values["frequency"].append(state.orders)
            values["monetary"].append(state.spend)
        else:
            values["frequency"].append(total(state.windows.get(rfm.ORDERS), end, window.length, "count"))
            values["monetary"].append(total(state.windows.get(rfm.SPEND), end, window.length, "sum"))
    return values, None if window is None else window.length


def backtest_file(pack: RulePack, path: str | Path, *, until: Instant | None = None,
                  deployments: Sequence[Scheduled] = (), activations: Activations | None = None,
                  finished: Callable[[Engine], None] | None = None) -> tuple[Report, Summary]:
    """Replay ``path`` through the engine (as ``segmenter replay`` does) into a report;
    ``activations`` gathers what the activations came to; ``finished`` sees the engine at the end.

    Bad events are counted in the summary and otherwise skipped: ``segmenter replay`` lists them.
    """
    engine = Engine(pack, deployments=deployments)
    names = dict.fromkeys(rule.name for p in [pack, *(d.pack for d in deployments)] for rule in p.rules)
    bt = Backtest(names)

    def skip(_: BadEvent) -> None:
        pass

    with open(path, "rb") as handle:
        summary = run(engine, handle, name=str(path), until=until, emit=bt.add, bad=skip,
                      latest=latest_accepted(until), activation=None if activations is None else activations.add)
    if activations is not None:
        activations.counts.update(engine.stats.activations)
    if finished is not None:
        finished(engine)
    return bt.report(engine.clock), summary
