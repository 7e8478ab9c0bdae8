"""An event counted in the rolling windows that take it, and a keyed window kept to its size."""

from __future__ import annotations

from collections.abc import Iterable

from streams.model import windows
from streams.model.clock import Instant
from streams.model.events import Envelope
from streams.model.state import CustomerState
from streams.rules.pack import KEY, WindowDef


def add_to_windows(state: CustomerState, event: Envelope, defs: Iterable[WindowDef], ts: Instant) -> list[str]:
    """The event counted in each of these windows that takes it, at the customer's now; the
    values of keyed windows it changed (counted, or forgotten to make room)."""
    now = state.clock
    counted: list[str] = []
    for window in defs:
        count_in(state, event, window, ts, now, counted)
    return counted


def count_in(state: CustomerState, event: Envelope, window: WindowDef, ts: Instant, now: Instant,
             counted: list[str]) -> None:
    """The event counted in one window, if it takes it; a keyed window's values it changed go
    to ``counted``."""
    value = window.value_of(event)
    if value is None:
        return
    name = window.name if window.by is None else window.key_of(event)
    if name is None:
        return
    entries = state.windows.get(name)
    created = entries is None
    if entries is None:
        entries = state.windows[name] = []
    windows.add(entries, ts, value, now, window.length, windows.COMBINE[window.aggregate])
    if not entries:
        del state.windows[name]
    if window.by is not None:
        counted.append(name)
        if created and entries:  # only a value new to the record adds one to keep
            counted += keep_most_counted(state, window, name)


def keep_most_counted(state: CustomerState, window: WindowDef, counted: str | None = None) -> list[str]:
    """A keyed window keeps ``window.keep`` values: past that, the value counted least (the
    longest ago among equals) is forgotten, never the one just ``counted``, so a new interest
    can take a place. Returns the values forgotten."""
    if len(state.windows) <= window.keep:
        return []
    prefix = window.name + KEY
    keys = [key for key in state.windows if key.startswith(prefix) and key != counted]
    excess = len(keys) + (counted is not None) - window.keep
    if excess <= 0:
        return []
    now, length, aggregate = state.clock, window.length, window.aggregate

    def weight(key: str) -> tuple[float, int, str]:
        entries = state.windows[key]
        return windows.total(entries, now, length, aggregate), int(entries[-2]) if entries else 0, key

    forgotten = [min(keys, key=weight)] if excess == 1 else sorted(keys, key=weight)[:excess]
    for key in forgotten:
        del state.windows[key]
    return forgotten
