"""Time as the engine sees it: integer microseconds since the Unix epoch, in UTC.

Integers, not datetimes, because the core compares and adds instants on every event and
deadline, and because "an event stops counting at exactly ts + W" must hold to the
microsecond without float rounding. Conversions to and from text live here and only here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

Instant = int
"""Microseconds since 1970-01-01T00:00:00Z."""

Duration = int
"""Microseconds."""

SECOND: Duration = 1_000_000
MINUTE: Duration = 60 * SECOND
HOUR: Duration = 60 * MINUTE
DAY: Duration = 24 * HOUR
WEEK: Duration = 7 * DAY

UNITS: dict[str, Duration] = {"s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def from_datetime(value: datetime) -> Instant:
    """An aware datetime as an instant. ``round`` recovers the exact microsecond from the float."""
    return round(value.timestamp() * 1_000_000)


def to_datetime(instant: Instant) -> datetime:
    return _EPOCH + timedelta(microseconds=instant)


def parse_instant(text: str) -> Instant:
    """ISO 8601 with an offset or ``Z``; a naive time is refused since its zone is a guess."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add 'Z' or '+hh:mm'")
    return from_datetime(value)


@lru_cache(maxsize=4096)
def format_instant(instant: Instant) -> str:
    """ISO 8601 in UTC with a ``Z``: seconds, then milliseconds or microseconds only when needed.
    (Cached: a change's time and the times in its reason are mostly the customer's latest.)"""
    value = _NAIVE_EPOCH + timedelta(microseconds=instant)
    micros = value.microsecond
    if micros == 0:
        spec = "seconds"
    elif micros % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return value.isoformat(timespec=spec) + "Z"


def parse_duration(text: str) -> Duration:
    """``"30m"``, ``"7d"``: a whole number and one unit of s, m, h, d, w."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write a whole number and a unit, like '30m' or '7d'")
    return int(match.group(1)) * UNITS[match.group(2)]


def format_duration(duration: Duration) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        size = UNITS[unit]
        if duration and duration % size == 0:
            return f"{duration // size}{unit}"
    return f"{duration / SECOND:g}s"
