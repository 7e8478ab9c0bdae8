"""Putting a new rule pack live at one instant: what changes, and one customer re-evaluated.

At the switch (docs/rules.md, Changing rules safely) every customer is judged at the instant
``at`` against the new pack: members of a removed segment exit, a rule whose definition changed
and a new rule are evaluated, and the differences are ordinary changes stamped ``at`` whose
reason names the deployment. Rules that did not change are not judged: nothing about them
changed at that instant that their deadlines would not catch.

A window the new pack adds (or defines anew) must not start empty: from the moment the engine
knows of a pending pack it keeps that window beside the live ones, under a *shadow* name, and
the driver fills it from history (:meth:`streams.engine.Engine.prefill`); at the switch the
shadow becomes the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.engine.judge import consent_of, flip, next_deadline, reason_value
from streams.model.changes import SegmentChange, make
from streams.model.clock import Instant
from streams.model.state import CustomerState
from streams.rules.pack import KEY, Rule, RulePack, WindowDef, entries_of

SHADOW = "@"
"""Separates a shadow window's name from the pack it is kept for: ``name@digest``."""


def shadow_name(window: str, pack: RulePack) -> str:
    return f"{window}{SHADOW}{pack.digest[:12]}"


def new_windows(before: RulePack, after: RulePack) -> dict[str, WindowDef]:
    """Windows of ``after`` that ``before`` does not keep with the same definition, under
    their shadow names."""
    out = {}
    for name, window in after.windows.items():
        kept = before.windows.get(name)
        if kept is None or kept.definition != window.definition:
            shadow = shadow_name(name, after)
            out[shadow] = dataclasses.replace(window, name=shadow)
    return out


def kept_for(live: RulePack, pending: list[RulePack]) -> tuple[dict[str, WindowDef], frozenset[str] | None]:
    """What records keep for the pending packs, in the order they go live: the shadow windows,
    and the traits to keep (None when no pending pack declares more than the live one)."""
    shadows: dict[str, WindowDef] = {}
    traits = set(live.traits)
    before = live
    for pack in pending:
        shadows.update(new_windows(before, pack))
        traits |= pack.traits
        before = pack
    return shadows, None if traits == live.traits else frozenset(traits)


def by_event_type(defs: Iterable[WindowDef]) -> dict[str, tuple[WindowDef, ...]]:
    found: dict[str, list[WindowDef]] = {}
    for window in defs:
        for event_type in window.events:
            found.setdefault(event_type, []).append(window)
    return {k: tuple(v) for k, v in found.items()}


def prefill_traits(key: str, state: CustomerState, traits: dict[str, Any], new: frozenset[str],
                   from_history: set[tuple[str, str]]) -> bool:
    """New traits from a past profile update (history is read oldest first): a later one
    replaces an earlier one, but never a value the record got live. ``from_history``: the
    (record, trait) set so far from history."""
    counted = False
    for name, value in traits.items():
        if name not in new or (name in state.traits and (key, name) not in from_history):
            continue
        if value is None:
            state.traits.pop(name, None)
        elif isinstance(value, str | int | float | bool):
            state.traits[name] = value
        from_history.add((key, name))
        counted = True
    return counted


@dataclass
class Switch:
    """From ``old`` to ``new`` at ``at``: what each customer goes through."""

    old: RulePack
    new: RulePack
    at: Instant
    keep_traits: frozenset[str]
    """Traits a record keeps after the switch: the new pack's, and those of packs still pending."""
    removed: tuple[Rule, ...] = ()
    judged: tuple[tuple[Rule, str], ...] = ()
    """(rule, "added" or "changed"), in pack order."""
    from_shadow: dict[str, str] = field(default_factory=dict)
    """window -> its shadow name."""

    def __post_init__(self) -> None:
        new_names = {rule.name for rule in self.new.rules}
        before = {rule.name: rule for rule in self.old.rules}
        self.removed = tuple(rule for rule in self.old.rules if rule.name not in new_names)
        judged = []
        for rule in self.new.rules:
            prior = before.get(rule.name)
            if prior is None:
                judged.append((rule, "added"))
            elif prior.definition != rule.definition:
                judged.append((rule, "changed"))
        self.judged = tuple(judged)
        self.from_shadow = {name.split(SHADOW)[0]: name for name in new_windows(self.old, self.new)}

    @property
    def effect(self) -> dict[str, str]:
        """segment -> added, changed or removed."""
        out = {rule.name: kind for rule, kind in self.judged}
        out.update({rule.name: "removed" for rule in self.removed})
        return out

    def apply(self, key: str, state: CustomerState) -> tuple[list[SegmentChange], bool]:
        """Re-judge one customer at the switch: their changes, and whether the record changed."""
        touched = self._windows_and_traits(state)
        if not state.identified:
            return [], touched
        at, new = self.at, self.new
        before_clock, before_deadline = state.clock, state.deadline
        if state.clock < at:
            state.clock = at
        now = state.clock
        consent = consent_of(state)
        changes: list[SegmentChange] = []
        members = state.members
        for rule in self.removed:
            count = members.get(rule.name, 0)
            if count % 2 == 1:
                flip(state, rule.name, now)
                changes.append(make(key, rule.name, count + 1, now, self._reason("removed"), consent,
                                    rule.version, state.origin, new.version))
        for rule, kind in self.judged:
            member = bool(rule.condition.fn(state))
            count = members.get(rule.name, 0)
            if member != (count % 2 == 1):
                flip(state, rule.name, now)
                reason = {**new.reason(rule, state, reason_value), **self._reason(kind)}
                changes.append(make(key, rule.name, count + 1, now, reason, consent, rule.version,
                                    state.origin, new.version))
        state.deadline = next_deadline(new.timed_rules, state, None)
        if not changes:
            state.clock = before_clock  # judged, unchanged: the customer's own time stays theirs
        return changes, touched or bool(changes) or state.deadline != before_deadline

    def _reason(self, kind: str) -> dict[str, Any]:
        return {"deployment": {"pack_version": self.new.version, "rule": kind}}

    def _windows_and_traits(self, state: CustomerState) -> bool:
        touched = False
        kept = state.windows
        for name, shadow in self.from_shadow.items():
            # The window (each of its values, if keyed) is replaced by what its shadow holds.
            for old in entries_of(kept, name):
                del kept[old]
                touched = True
            for key in entries_of(kept, shadow):
                kept[name + key[len(shadow):]] = kept.pop(key)
                touched = True
        for name in [n for n in kept if n.split(KEY, 1)[0] not in self.new.windows and SHADOW not in n]:
            del kept[name]
            touched = True
        for name in [n for n in state.traits if n not in self.keep_traits]:
            del state.traits[name]
            touched = True
        return touched
