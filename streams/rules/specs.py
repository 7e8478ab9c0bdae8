"""The shapes of a rules folder's files (docs/rules.md): msgspec Structs that forbid unknown
keys, so a misspelt key is an error with its path, not a setting silently ignored."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
"""A segment's, window's or channel's name: lower_snake_case."""


class StrictFile(msgspec.Struct, forbid_unknown_fields=True):
    """A table of a rule or test file: an unknown key is a mistake to report, never to skip."""


class Settings(StrictFile):
    allowed_lateness: str = "7d"


class WindowSpec(StrictFile):
    events: list[str]
    over: str
    aggregate: Literal["count", "sum", "max"] = "count"
    where: str | None = None
    value: str | None = None
    description: str = ""
    by: str | None = None
    """An event field (a string): one window per value of it, read by segments with ``for_each``."""
    keep: int = 5
    """With ``by``: the values kept per customer, the most counted."""


class ActivationSpec(StrictFile):
    timezone_trait: str | None = None
    timezone: str = "UTC"


class ChannelSpec(StrictFile):
    segments: list[str]
    consent: str | None = None
    """Defaults to the channel's name for email, sms and push; other channels need none."""
    cap: str | None = None
    quiet_hours: str | None = None


class RfmSpec(StrictFile):
    """``[rfm]``: the horizon, and four cut points each for recency, frequency and monetary value."""

    horizon: str = "365d"
    recency: list[str] = msgspec.field(default_factory=list)
    frequency: list[float] = msgspec.field(default_factory=list)
    monetary: list[float] = msgspec.field(default_factory=list)


class PackSpec(StrictFile):
    version: str | int | None = None
    """The pack's version, as deployments and changes show it (the files' digest when unset)."""
    settings: Settings = msgspec.field(default_factory=Settings)
    traits: dict[str, str] = msgspec.field(default_factory=dict)
    windows: dict[str, WindowSpec] = msgspec.field(default_factory=dict)
    activation: ActivationSpec = msgspec.field(default_factory=ActivationSpec)
    channels: dict[str, ChannelSpec] = msgspec.field(default_factory=dict)
    priority: dict[str, list[str]] = msgspec.field(default_factory=dict)
    rfm: RfmSpec | None = None


class SegmentSpec(StrictFile):
    name: str
    version: int
    when: str
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    requires_consent: Literal["email", "sms", "push"] | None = None
    cooldown: str | None = None
    """No new activation for this segment within this long of the last one (docs/activation.md)."""
    once_per: str | None = None
    """A field: no new activation for this segment while it has the value it had at the last one."""
    for_each: list[str] | None = None
    """One segment per value (``<name>_<value>``), each reading the windows kept ``by`` it for that value."""
