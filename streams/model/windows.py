"""Rolling windows kept as a short list of (time, value) entries per customer and window.

A window of length W at time t holds the events with ``t - W < ts <= t`` (docs/contract.md, Time), so an
entry stops counting at exactly ``ts + W``. Entries are kept at their exact instant, which
makes every expiry exact to the microsecond; events at the same instant share one entry, and
entries that have expired are dropped whenever the window is written. Memory is therefore
bounded by the events inside the window, not by the customer's history. A customer who sends
more than :data:`MAX_ENTRIES` distinct instants inside one window (a bot, usually) has its two
oldest entries folded into the later one: those events then count a little longer than W.

The list is flat, ``[ts0, v0, ts1, v1, ...]`` sorted by time, because that is the smallest
thing msgpack and Python both hold.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from operator import add as _plus

from streams.model.clock import Duration, Instant

MAX_ENTRIES = 64

Entries = list[float]
"""Flat ``[ts, value, ts, value, ...]``; timestamps are ints, values ints or floats."""

Combine = Callable[[float, float], float]


def _add(a: float, b: float) -> float:
    return a + b


COMBINE: dict[str, Combine] = {"count": _add, "sum": _add, "max": max}


def add(entries: Entries, ts: Instant, value: float, now: Instant, length: Duration, combine: Combine) -> None:
    """Put one event's value in the window and drop what has expired at ``now``."""
    if ts + length <= now:  # a late event already outside the window: it never counts
        prune(entries, now, length)
        return
    i = len(entries)
    while i and entries[i - 2] > ts:  # late events walk back; in-order ones stop at once
        i -= 2
    if i and entries[i - 2] == ts:
        entries[i - 1] = combine(entries[i - 1], value)
    else:
        entries[i:i] = [ts, value]
    prune(entries, now, length)
    if len(entries) > 2 * MAX_ENTRIES:
        entries[3] = combine(entries[1], entries[3])
        del entries[0:2]


def prune(entries: Entries, now: Instant, length: Duration) -> None:
    start = now - length
    i = 0
    n = len(entries)
    while i < n and entries[i] <= start:
        i += 2
    if i:
        del entries[0:i]


def total(entries: Entries | None, now: Instant, length: Duration, aggregate: str) -> float:
    """The window's value at ``now``: a count or sum (0 when empty), or a max (None when empty)."""
    if not entries:
        return None if aggregate == "max" else 0  # type: ignore[return-value]
    start = now - length
    if entries[-2] <= now:  # nothing after now (the usual case): skip what expired, take the rest
        i, n = 0, len(entries)
        while i < n and entries[i] <= start:
            i += 2
        if aggregate == "max":
            return max(entries[i + 1::2]) if i < n else None  # type: ignore[return-value]
        result = reduce(_plus, entries[i + 1::2], 0.0)  # in order, as the loop below adds
        return result if aggregate == "sum" else int(result)
    if aggregate == "max":
        values = [entries[i + 1] for i in range(0, len(entries), 2) if start < entries[i] <= now]
        return max(values) if values else None  # type: ignore[return-value]
    result = 0.0
    for i in range(0, len(entries), 2):
        if start < entries[i] <= now:
            result += entries[i + 1]
    return result if aggregate == "sum" else int(result)


def next_expiry(entries: Entries | None, now: Instant, length: Duration) -> Instant | None:
    """The next instant after ``now`` at which the window's value changes with no new event."""
    if not entries:
        return None
    start = now - length
    for i in range(0, len(entries), 2):
        if entries[i] > start:
            return int(entries[i]) + length
    return None


def merge(into: Entries, other: Entries, now: Instant, length: Duration, combine: Combine) -> None:
    """Fold another profile's window into this one (identity merge)."""
    for i in range(0, len(other), 2):
        add(into, int(other[i]), other[i + 1], now, length, combine)
