"""A loaded rule pack: compiled segments and windows, indexed the way the engine asks for them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.model.clock import DAY, Duration
from streams.model.events import EVENT_TYPES
from streams.rules.activation import ActivationSettings
from streams.rules.compiled import Expr, to_function
from streams.rules.fields import NUMBER, SEEN_CHANGED, Field

DEFAULT_ALLOWED_LATENESS: Duration = 7 * DAY
KEY = "#"
"""Separates a keyed window's name from the value in a record's windows: ``name#value``."""


def entries_of(windows: dict[str, Any], name: str) -> list[str]:
    """The names a window's entries have in a record: its own, or one per value if keyed."""
    prefix = name + KEY
    return [key for key in windows if key == name or key.startswith(prefix)]


def window_name(name: str) -> str:
    """The window a field name reads (``windows.x[value]`` reads ``x``), without ``windows.``."""
    return name.removeprefix("windows.").split("[", 1)[0]


@dataclass(frozen=True)
class WindowDef:
    """A named rolling aggregate over some event types, declared once in pack.toml."""

    name: str
    events: tuple[str, ...]
    length: Duration
    aggregate: str
    """``count``, ``sum`` or ``max``."""
    where: Expr | None
    value: Expr | None
    description: str = ""
    definition: str = ""
    """What the window counts, as text: two windows with the same definition hold the same entries."""
    by: Expr | None = None
    """Keyed: one window per value of this event field, kept under ``<name>#<value>``."""
    keep: int = 0
    """Keyed: the values kept per customer (the most counted; the latest among equals)."""
    values: frozenset[str] = frozenset()
    """Keyed: the values some segment reads; events with another value are not counted."""

    def key_of(self, event: Any) -> str | None:
        """Where a keyed window puts this event: ``<name>#<value>``, or None if not counted."""
        assert self.by is not None
        value = self.by.fn(event)
        return f"{self.name}{KEY}{value}" if value in self.values else None

    def keys(self, state: Any) -> list[str]:
        """A keyed window's entries in a record, one per value kept."""
        return entries_of(state.windows, self.name)

    def value_field(self, value: str) -> tuple[Field, str]:
        """A keyed window's value for one of its values, as a rule reads it, and its next change."""
        key = f"{self.name}{KEY}{value}"
        doc = f"{self.description or 'window ' + self.name}, for {value}"
        return self._field(f"windows.{self.name}[{value}]", key, doc), self.next_code(key)

    def field(self) -> Field:
        """The window's value, as a rule reads it: its aggregate at the customer's now."""
        return self._field(f"windows.{self.name}", self.name, self.description or f"window {self.name}")

    def next_code(self, key: str | None = None) -> str:
        """When the value under ``key`` (the window's own name unless keyed) next changes with
        no event, as source over the record ``s``: its oldest entry expires."""
        return f"_next_expiry(s.windows.get({key or self.name!r}), s.clock, {self.length})"

    def _field(self, name: str, key: str, doc: str) -> Field:
        """The aggregate of the record's entries under ``key`` at its now: as source, and as the
        getter compiled from it."""
        code = f"_total(s.windows.get({key!r}), s.clock, {self.length}, {self.aggregate!r})"
        return Field(name, NUMBER, to_function(code, {}), doc, frozenset(), code)

    def value_of(self, event: Any) -> float | None:
        """What this event adds, or None when it does not count (filtered out, or no value)."""
        if self.where is not None and not self.where.fn(event):
            return None
        if self.value is None:
            return 1
        v: float | None = self.value.fn(event)
        return v


@dataclass(frozen=True)
class Rule:
    """One segment: its membership condition and what describes it."""

    name: str
    version: int
    condition: Expr
    file: str
    description: str = ""
    tags: tuple[str, ...] = ()
    requires_consent: str | None = None
    definition: str = ""
    """Everything the rule's membership depends on, as text (its version, condition, the
    definitions of the windows and traits it reads): a deployment re-evaluates a rule whose
    definition changed."""

    @property
    def reads(self) -> frozenset[str]:
        return self.condition.reads

    @property
    def timed(self) -> bool:
        return self.condition.timed


@dataclass
class RulePack:
    rules: tuple[Rule, ...]
    windows: dict[str, WindowDef]
    """Only the windows some rule reads: the state keeps nothing else."""
    fields: dict[str, Field]
    """Everything a rule may read, to build a change's reason."""
    allowed_lateness: Duration = DEFAULT_ALLOWED_LATENESS
    directory: str = ""
    traits: frozenset[str] = frozenset()
    """The profile traits the pack declares: the only ones a customer's record keeps."""
    label: str = ""
    """The ``version`` set in pack.toml, if any."""
    digest: str = ""
    """SHA-256 of the pack's files: the same files, the same digest."""
    activation: ActivationSettings = field(default_factory=ActivationSettings)
    """Which segments feed which channel, and the policies on the way."""
    windows_for_type: dict[str, tuple[WindowDef, ...]] = field(default_factory=dict)
    timed_rules: tuple[Rule, ...] = ()
    affected: dict[tuple[str, bool, bool], tuple[Rule, ...]] = field(default_factory=dict)
    """(event type, deadline due, device/channel/first_seen changed) -> the rules to re-evaluate,
    in pack order: those reading something the event can change, plus the timed ones when due."""
    by_value: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    """A keyed window's value in a record (``name#value``) -> the rules reading it: an event
    that counts a value re-evaluates those, not the rules of every value (``affected`` leaves
    them out, except for ``identify``)."""
    rank: dict[str, int] = field(default_factory=dict)
    """Rule name -> its place in the pack's order."""
    plans: Any = field(default=None, compare=False, repr=False)
    """The engine's generated judging functions (:mod:`streams.engine.judge`), made on first use."""
    _reads: dict[str, tuple[tuple[str, str, Callable[[Any], Any]], ...]] = field(default_factory=dict)
    """Rule name -> (field, type, getter) of what it reads, sorted: a change's reason, ready-made."""

    def __post_init__(self) -> None:
        self._reads = {rule.name: tuple((name, self.fields[name].type, self.fields[name].get)
                                        for name in sorted(rule.reads)) for rule in self.rules}
        self.timed_rules = tuple(r for r in self.rules if r.timed)
        by_type: dict[str, list[WindowDef]] = {}
        for window in self.windows.values():
            for event_type in window.events:
                by_type.setdefault(event_type, []).append(window)
        self.windows_for_type = {k: tuple(v) for k, v in by_type.items()}
        changed_by: dict[str, set[str]] = {}
        for name, spec in self.fields.items():
            types = set(spec.changed_by)
            if name.startswith("windows."):
                types |= set(self.windows[window_name(name)].events) | {"identify"}
            for event_type in types:
                changed_by.setdefault(event_type, set()).add(name)
        seen_names = changed_by.get(SEEN_CHANGED, set())
        keyed = {name for name in self.fields if name.startswith("windows.") and name.endswith("]")}
        by_value: dict[str, list[Rule]] = {}
        for rule in self.rules:
            for name in rule.reads & keyed:
                by_value.setdefault(f"{window_name(name)}{KEY}{name[name.index('[') + 1:-1]}", []).append(rule)
        self.by_value = {k: tuple(v) for k, v in by_value.items()}
        self.rank = {rule.name: n for n, rule in enumerate(self.rules)}
        for event_type in EVENT_TYPES:
            names = changed_by.get(event_type, set())
            if event_type != "identify":
                names = names - keyed
            for due in (False, True):
                for seen in (False, True):
                    touched = names | seen_names if seen else names
                    self.affected[event_type, due, seen] = tuple(
                        r for r in self.rules if r.reads & touched or (due and r.timed))

    @property
    def version(self) -> str:
        """The pack's version as changes and deployments show it: its label, or its digest."""
        return self.label or self.digest[:12]

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def reason(self, rule: Rule, state: Any, fmt: Callable[[str, Any], Any]) -> dict[str, Any]:
        """The values the rule read, as they were when it flipped."""
        return {name: fmt(typ, get(state)) for name, typ, get in self._reads[rule.name]}
