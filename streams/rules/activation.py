"""Activation settings of a rule pack: which segments feed which channel, and the policies that
protect customers on the way (docs/activation.md).

Declared in pack.toml::

    [activation]
    timezone_trait = "timezone"      # the trait holding a customer's IANA time zone
    timezone = "UTC"                 # when the trait is unset or not a zone

    [channels.sms]
    segments = ["sms_cart_recovery"]
    cap = "2/7d"                     # at most 2 per customer per 7 days on this channel
    quiet_hours = "21:00-09:00"      # local time; held until they end, not dropped

    [priority]
    recovery = ["sms_cart_recovery", "lapsed_high_value"]   # highest first

and in a segment's own file ``cooldown = "24h"`` and ``once_per = "cart_started_at"`` (one
activation per value of that field: one text per cart).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from zoneinfo import ZoneInfo

from streams.model.clock import Duration, parse_duration
from streams.rules.fields import Field

CONSENT_CHANNELS = ("email", "sms", "push")
_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Cap:
    count: int
    period: Duration


@dataclass(frozen=True)
class QuietHours:
    start: int
    """Minutes after local midnight at which the quiet hours begin."""
    end: int
    """... and end; before ``start`` when they span midnight."""

    def holds(self, minute: int) -> bool:
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True)
class Channel:
    name: str
    segments: tuple[str, ...]
    consent: str | None
    """The consent a customer must have given (email, sms, push); None for a channel of the
    user's own naming that needs none."""
    cap: Cap | None = None
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class ActivationSettings:
    """A pack's activation settings; empty when the pack feeds no channel."""

    channels: dict[str, Channel] = field(default_factory=dict)
    cooldowns: dict[str, Duration] = field(default_factory=dict)
    """segment -> no new activation within this long of the last one for it."""
    priority: dict[str, int] = field(default_factory=dict)
    """segment -> its rank in its group (0 is highest)."""
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """segment -> its group's segments, highest first."""
    timezone_trait: str | None = None
    timezone: str = "UTC"
    once_per: dict[str, Field] = field(default_factory=dict)
    """segment -> the field whose value it is activated once for."""

    def feeds(self, segment: str) -> tuple[Channel, ...]:
        return self._feeds.get(segment, ())

    @cached_property
    def _feeds(self) -> dict[str, tuple[Channel, ...]]:
        """segment -> the channels it feeds, in the order they are declared."""
        segments = {s for c in self.channels.values() for s in c.segments}
        return {s: tuple(c for c in self.channels.values() if s in c.segments) for s in segments}

    def zone(self, traits: dict[str, object]) -> ZoneInfo:
        name = traits.get(self.timezone_trait) if self.timezone_trait else None
        if isinstance(name, str):
            zone = zone_or_none(name)
            if zone is not None:
                return zone
        return ZoneInfo(self.timezone)


def zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return None


def parse_cap(text: str) -> Cap:
    match = _CAP.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"cap {text!r}: write a count of at least 1 and a period, like \"2/7d\"")
    return Cap(int(match.group(1)), parse_duration(match.group(2)))


def parse_quiet_hours(text: str) -> QuietHours:
    match = _HOURS.match(text)
    if match is None:
        raise ValueError(f"quiet_hours {text!r}: write local times, like \"21:00-09:00\"")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise ValueError(f"quiet_hours {text!r}: two different times of day, HH:MM-HH:MM")
    return QuietHours(h1 * 60 + m1, h2 * 60 + m2)
