"""The demo view's summing up: a stream of segment changes in, counts per segment, the latest
changes and how far event time has come out (:mod:`streams.tools.demo_view` shows them)."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.model.changes import ENTERED, EXITED

WINDOW_S = 60.0
"""Entries and exits per minute count the changes of this many seconds of event time."""
CAUGHT_UP_S = 120.0
"""A change produced this close to its ``at``: the history is read, the view is live."""
KAFKA_TS = "kafka_ts_ms"
"""Key under which the view adds the Kafka record timestamp (epoch ms) to a change dict: the
moment the worker produced it. Produced minus ``at`` is how far behind the worker was."""
LATEST = 10
"""How many of the latest changes the view lists."""


@dataclass
class SegmentCounts:
    entered: int = 0
    exited: int = 0
    entered_last_minute: int = 0
    exited_last_minute: int = 0

    @property
    def members(self) -> int:
        return self.entered - self.exited


@dataclass(frozen=True)
class ViewSummary:
    changes: int
    """Changes counted (well-formed ones)."""
    skipped: int
    """Records that were not a change (not JSON, or a field missing)."""
    segments: dict[str, SegmentCounts]
    """By segment name, sorted."""
    latest: list[Mapping[str, Any]]
    """The latest changes by ``at``, newest first."""
    last_at: str | None
    """The largest ``at`` seen: how far event time has come."""
    behind_s: float | None = None
    """How far behind the wall clock the worker's event time was when it produced the latest
    change (without record timestamps: the latest ``at``); None before any change."""
    live_since: float | None = None
    """When (wall clock, epoch seconds) event time first came within :data:`CAUGHT_UP_S`."""

    @property
    def total(self) -> SegmentCounts:
        total = SegmentCounts()
        for counts in self.segments.values():
            total.entered += counts.entered
            total.exited += counts.exited
            total.entered_last_minute += counts.entered_last_minute
            total.exited_last_minute += counts.exited_last_minute
        return total

    @property
    def status(self) -> str:
        if self.behind_s is None:
            return "waiting for the first change"
        if self.live_since is None:
            return f"reading history: event time {_span(self.behind_s)} behind the wall clock"
        since = datetime.fromtimestamp(self.live_since, UTC).strftime("%H:%M:%S")
        return f"live: caught up with history at {since} UTC"


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    return f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m"


def epoch(at: str) -> float:
    """ISO 8601 UTC text (``...Z``) to epoch seconds."""
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


@dataclass
class Tally:
    """Running totals over a stream of changes: :meth:`add` each, :meth:`summary` at any time.

    Memory stays bounded: counters per segment, the :data:`LATEST` changes with the largest
    ``at``, and the (at, segment, change) of the changes still inside the latest minute.
    """

    window_s: float = WINDOW_S
    latest_n: int = LATEST
    changes: int = 0
    skipped: int = 0
    entered: dict[str, int] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)
    last_at: str | None = None
    live_since: float | None = None
    lag: float | None = None
    """Produced minus ``at`` of the latest change produced (seconds)."""
    worker_clock: float | None = None
    """The worker's event time (its partition furthest behind, epoch seconds), when the view can
    ask the worker: then that, not the changes, says how far behind it is."""
    _produced: float = 0.0
    _last: float = 0.0
    """``last_at`` in epoch seconds."""
    _latest: list[tuple[str, int, Mapping[str, Any]]] = field(default_factory=list)
    _recent: deque[tuple[float, str, str]] = field(default_factory=deque)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def add(self, change: Mapping[str, Any]) -> bool:
        """Count one change dict (docs/contract.md, Output); False if it is not one."""
        segment, kind, at = change.get("segment"), change.get("change"), change.get("at")
        if not isinstance(segment, str) or kind not in (ENTERED, EXITED) or not isinstance(at, str):
            self.skipped += 1
            return False
        try:
            when = epoch(at)
        except ValueError:
            self.skipped += 1
            return False
        self.changes += 1
        counts = self.entered if kind == ENTERED else self.exited
        counts[segment] = counts.get(segment, 0) + 1
        if self.last_at is None or at > self.last_at:  # ISO 8601 UTC text sorts by time
            self.last_at, self._last = at, when
        # Newest by ``at``; of equal ones, the later to arrive.
        heapq.heappush(self._latest, (at, next(self._order), change))
        if len(self._latest) > self.latest_n:
            heapq.heappop(self._latest)
        if when > self._last - self.window_s:
            self._recent.append((when, segment, kind))
        stamp = change.get(KAFKA_TS)
        if isinstance(stamp, int | float) and not isinstance(stamp, bool) and stamp / 1000 >= self._produced:
            self._produced = stamp / 1000
            self.lag = max(self._produced - when, 0.0)
        return True

    def summary(self, now: float) -> ViewSummary:
        """The state as of ``now`` (the wall clock, epoch seconds)."""
        names = sorted(set(self.entered) | set(self.exited))
        segments = {name: SegmentCounts(self.entered.get(name, 0), self.exited.get(name, 0)) for name in names}
        behind = None if self.worker_clock is None else max(now - self.worker_clock, 0.0)
        if self.last_at is not None:
            last = self._last
            if behind is None:
                behind = self.lag if self.lag is not None else max(now - last, 0.0)
            if self.live_since is None and behind <= CAUGHT_UP_S:
                self.live_since = now
            # The latest minute of event time: up to now once live (quiet minutes count as
            # quiet), up to the latest change while history is being read.
            end = now if self.live_since is not None else last
            since = end - self.window_s
            kept = sorted(item for item in self._recent if item[0] > since)
            self._recent.clear()
            self._recent.extend(kept)
            for when, segment, kind in kept:
                if when <= end:
                    counts = segments[segment]
                    if kind == ENTERED:
                        counts.entered_last_minute += 1
                    else:
                        counts.exited_last_minute += 1
        latest = [change for _, _, change in sorted(self._latest, reverse=True)]
        return ViewSummary(changes=self.changes, skipped=self.skipped, segments=segments, latest=latest,
                           last_at=self.last_at, behind_s=behind, live_since=self.live_since)


def summarize(changes: Iterable[Mapping[str, Any]], now: float, *, window_s: float = WINDOW_S,
              latest: int = LATEST) -> ViewSummary:
    """The summary of a list of change dicts, in the order they arrived, as of ``now``."""
    tally = Tally(window_s=window_s, latest_n=latest)
    for change in changes:
        tally.add(change)
    return tally.summary(now)
