"""Many customers: a store of states, the timer index, the clock, routing and counters.

Both drivers own one Engine (the worker one per partition): ``segmenter replay`` feeds it a
file, the faust worker feeds it Kafka messages and hands it a faust table as its store. The
Engine decides which customer an event belongs to, fires due deadlines before applying an
event (docs/contract.md, Time: "a customer's deadlines earlier than ts fire first"), drops duplicates and
events beyond the allowed lateness, and counts what it did.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence

import msgspec

from streams.engine import bounds
from streams.engine import customer as core
from streams.engine.activate import activate, cancel_all
from streams.engine.counting import add_to_windows
from streams.engine.stats import Stats
from streams.engine.switch import Switch, by_event_type, kept_for, prefill_traits
from streams.engine.timers import TimerIndex
from streams.model.activations import Activation
from streams.model.changes import ENTERED, SegmentChange
from streams.model.clock import Instant, format_duration, format_instant
from streams.model.events import BadEvent, Envelope, decode, type_of
from streams.model.limits import DEFAULT_LIMITS, Limits
from streams.model.state import CustomerState
from streams.rules.deployments import Scheduled
from streams.rules.pack import RulePack, WindowDef


class Snapshot(msgspec.Struct):
    """Everything an Engine needs to resume where it stopped (the timer index is rebuilt)."""

    clock: Instant | None
    states: dict[str, CustomerState]
    aliases: dict[str, str]
    erased: dict[str, Instant] = {}


class Engine:
    def __init__(self, pack: RulePack, *, states: MutableMapping[str, CustomerState] | None = None,
                 aliases: MutableMapping[str, str] | None = None, clock: Instant | None = None,
                 erased: MutableMapping[str, Instant] | None = None,
                 owns: Callable[[str], bool] | None = None, limits: Limits = DEFAULT_LIMITS,
                 deployments: Sequence[Scheduled] = ()) -> None:
        self.pack = pack
        """The pack live at the engine's clock."""
        self.pending: list[Scheduled] = []
        """Deployments still to go live, by instant (:meth:`deploy`)."""
        self.shadows: dict[str, WindowDef] = {}
        """Windows kept for the pending packs, under their shadow names (:mod:`streams.engine.switch`)."""
        self.shadows_for_type: dict[str, tuple[WindowDef, ...]] = {}
        self.keep_traits: frozenset[str] | None = None
        """The traits records keep, when pending packs declare more than the live one."""
        self.history_traits: set[tuple[str, str]] = set()
        """(record, trait) set from history by :meth:`prefill`, which later history may replace."""
        self.limits = limits
        self.states: MutableMapping[str, CustomerState] = {} if states is None else states
        self.aliases: MutableMapping[str, str] = {} if aliases is None else aliases
        self.erased: MutableMapping[str, Instant] = {} if erased is None else erased
        """Erased keys and when, for the allowed lateness: an older event that arrives after the
        erasure (a redelivery, a late event) must not bring the customer back."""
        self.owns = owns
        """Whether a key's records are this engine's (the live worker runs one per partition);
        None: all of them."""
        self.unlinked: list[str] = []
        """Visitor ids whose alias another engine holds and must forget: the driver sends them on
        (:meth:`take_unlinked`)."""
        self.timers = TimerIndex()
        self.expiring: list[tuple[Instant, str]] = []
        """Erasure markers by time (a heap), so that each goes once the allowed lateness has passed."""
        self.clock = clock
        self.stats = Stats()
        self.activations: list[Activation] = []
        """Activations since the last :meth:`take_activations`."""
        self.sizes: Counter[str] = Counter()
        self.rebuild()
        for scheduled in sorted(deployments, key=lambda d: d.at):
            if clock is not None and scheduled.at <= clock:
                self.pack = scheduled.pack  # live before the engine stopped: its switch is done
            else:
                self.pending.append(scheduled)
        self._pending_changed()

    def rebuild(self) -> None:
        """Timer index and segment sizes from the store, after a restart or a rebalance."""
        self.timers.rebuild((key, state.deadline) for key, state in self.states.items())
        self.sizes = Counter(name for state in self.states.values() for name in state.memberships())
        self.expiring = sorted((at, key) for key, at in self.erased.items())

    # --- input -------------------------------------------------------------------------------

    def process_bytes(self, raw: bytes, where: str = "", *,
                      latest: Instant | None = None) -> list[SegmentChange] | BadEvent:
        """Decode and apply one message; ``latest``: the latest event time accepted."""
        event = decode(raw, limits=self.limits, latest=latest)
        if isinstance(event, BadEvent):
            event.where = where
            self.stats.bad += 1
            return event
        result = self.process(event, raw)
        if isinstance(result, BadEvent):
            result.where = where
        return result

    def process(self, event: Envelope, raw: bytes = b"", *,
                position: tuple[str, int] | None = None) -> list[SegmentChange] | BadEvent:
        """Apply one event. ``position`` (topic partition, offset) is where the event was read,
        so that a redelivered message is never applied twice."""
        return self._process(event, raw, None, None, position)

    def apply_routed(self, customer: str, event: Envelope, raw: bytes, *,
                     position: tuple[str, int] | None = None) -> list[SegmentChange] | BadEvent:
        """Apply a visitor's event to ``customer``, whose alias another engine holds."""
        return self._process(event, raw, customer, None, position)

    def merge_visitor(self, anon: str, visitor: CustomerState | None, event: Envelope, raw: bytes, *,
                      position: tuple[str, int] | None = None) -> list[SegmentChange] | BadEvent:
        """Apply an ``identify`` whose visitor record (``visitor``) another engine handed over."""
        return self._process(event, raw, None, (anon, visitor), position)

    def hand_over_visitor(self, anon: str, customer: str) -> CustomerState | None:
        """The visitor ``anon`` is ``customer`` from now on: remember the alias, and give up the
        visitor's record (returned) for the engine that holds the customer to merge."""
        visitor = self.states.pop(anon, None)
        self.timers.discard(anon)
        self._set_alias(anon, customer)
        return visitor

    def unlink(self, anon: str) -> None:
        """Forget a visitor whose customer was erased by another engine."""
        self._drop_alias(anon)
        self.states.pop(anon, None)

    def take_activations(self) -> list[Activation]:
        """Activations (docs/activation.md) since the last call, in the order they were decided."""
        out, self.activations = self.activations, []
        return out

    def customer_of(self, anon: str) -> str | None:
        return self.aliases.get(anon)

    def state_of(self, key: str) -> CustomerState | None:
        return self.states.get(key)

    def take_unlinked(self) -> list[str]:
        """Visitor ids to unlink on the engines that hold them, since the last call."""
        unlinked, self.unlinked = self.unlinked, []
        return unlinked

    def _process(self, event: Envelope, raw: bytes, key: str | None,
                 merged: tuple[str, CustomerState | None] | None,
                 position: tuple[str, int] | None) -> list[SegmentChange] | BadEvent:
        ts = event.instant
        pack = self.pack
        tag = type_of(event)
        # An erasure is never late: whatever its ts, the customer must be forgotten.
        if (self.clock is not None and ts < self.clock - pack.allowed_lateness
                and tag != "customer_erased"):
            return self._late(event, raw, self.clock)
        changes = self.advance(ts, inclusive=False)
        if key is not None:
            identified = True
        elif event.customer_id is not None:
            key, identified = event.customer_id, True
        else:
            anon = event.anonymous_id or ""
            key = self.aliases.get(anon, anon)
            identified = key != anon
        state = self.states.get(key)
        erased_at = self.erased.get(key) if self.erased else None
        if erased_at is not None and ts <= erased_at:
            self.stats.after_erasure += 1
            return changes
        if tag == "customer_erased":
            if state is not None:
                self._erase(key, state, ts, changes)
            else:  # nothing held yet: the marker alone keeps a late event from recreating them
                self._mark_erased(key, ts)
            self.stats.events += 1
            return changes
        fresh = state is None
        if state is None:
            state = CustomerState(identified=identified, origin=core.event_hash(event.event_id))
        if position is not None and state.positions.get(position[0], -1) >= position[1]:
            self.stats.duplicates += 1
            return changes
        if ts < state.clock - pack.allowed_lateness:
            # The engine's clock may be behind its customers' after a restart.
            return self._late(event, raw, state.clock)
        keys = core.duplicate_keys(event, tag)
        if core.seen_before(state, keys):
            self.stats.duplicates += 1
            return changes
        problem = bounds.beyond_limits(pack, self.limits, key, state, event, tag, ts, len(keys))
        if problem is not None:
            if tag == "identify" and merged is None:
                self._drop_visitor(event.anonymous_id or "")
            self.stats.bad += 1
            return BadEvent(problem, raw, event_id=event.event_id)
        core.remember(state, keys, ts)
        if position is not None:
            state.positions[position[0]] = position[1]
        if ts < state.clock:
            self.stats.late += 1
        evaluate_all = fresh or (identified and not state.identified)
        state.identified = state.identified or identified
        if tag == "identify":
            self._merge(key, state, event.anonymous_id or "", merged)
            evaluate_all = True
        new = core.apply_event(pack, key, state, event, tag, ts, evaluate_all=evaluate_all,
                               traits=self.keep_traits)
        if self.shadows_for_type:
            add_to_windows(state, event, self.shadows_for_type.get(tag, ()), ts)
        if new or state.held:
            activate(pack, key, state, new, state.clock, self.activations, self.stats.activations)
        self.states[key] = state
        self.timers.set(key, state.deadline)
        self.stats.events += 1
        if new:
            self._count(new)
            changes += new
        return changes

    def advance(self, until: Instant, *, inclusive: bool = True) -> list[SegmentChange]:
        """Move the clock to ``until``, firing every deadline due by then, earliest first, and
        putting live each deployment whose instant is reached (before anything else at it)."""
        if not self.pending:
            return self._fire(until, inclusive=inclusive)
        changes: list[SegmentChange] = []
        while self.pending and self.pending[0].at <= until:
            scheduled = self.pending.pop(0)
            changes += self._fire(scheduled.at, inclusive=False)
            assert self.clock is not None
            changes += self._switch(self.clock, scheduled.pack)
        changes += self._fire(until, inclusive=inclusive)
        return changes

    def _fire(self, until: Instant, *, inclusive: bool) -> list[SegmentChange]:
        changes: list[SegmentChange] = []
        first = self.timers.next_deadline()
        if first is None or first > until or (first == until and not inclusive):
            self._move_clock(until)
            return changes
        for deadline, key in self.timers.pop_due(until, inclusive=inclusive):
            state = self.states.get(key)
            if state is None or state.deadline != deadline:
                continue
            new = core.fire(self.pack, key, state, deadline)
            if new or state.held:
                activate(self.pack, key, state, new, state.clock, self.activations, self.stats.activations)
            self.states[key] = state
            if state.deadline is not None:
                self.timers.set(key, state.deadline)
            if new:
                self._count(new)
                changes += new
        self._move_clock(until)
        return changes

    def _move_clock(self, until: Instant) -> None:
        if self.clock is None or until > self.clock:
            self.clock = until
            if self.expiring:
                self._forget_old_erasures()

    # --- rule deployments ------------------------------------------------------------------------

    def deploy(self, scheduled: Scheduled) -> list[SegmentChange]:
        """A deployment learnt while running. One whose instant the clock has passed goes live
        at once, at the clock (its changes returned); the others wait for their instant."""
        if any(p.id == scheduled.id and scheduled.id for p in self.pending):
            return []
        if self.clock is not None and scheduled.at <= self.clock:
            return self._switch(self.clock, scheduled.pack)
        self.pending.append(scheduled)
        self.pending.sort(key=lambda d: d.at)
        self._pending_changed()
        return []

    def prefill(self, key: str, event: Envelope) -> bool:
        """Count a past event of ``key`` (read from history, oldest first) in the windows and
        traits kept for the pending packs; False when it does not belong there (no such record,
        from before the record began, or nothing new reads it)."""
        state = self.states.get(key)
        if state is None or event.instant < (state.first_seen or 0):
            return False
        tag = type_of(event)
        counted = False
        if tag == "profile_updated" and self.keep_traits is not None:
            counted = prefill_traits(key, state, event.properties.traits,  # type: ignore[attr-defined]
                                     self.keep_traits - self.pack.traits, self.history_traits)
        defs = self.shadows_for_type.get(tag)
        if defs:
            add_to_windows(state, event, defs, event.instant)
            counted = True
        if counted:
            self.states[key] = state
        return counted

    def needs_history(self) -> bool:
        """Whether a pending pack keeps something that history must fill."""
        return bool(self.shadows) or self.keep_traits is not None

    def _pending_changed(self) -> None:
        self.shadows, self.keep_traits = kept_for(self.pack, [p.pack for p in self.pending])
        self.shadows_for_type = by_event_type(self.shadows.values())

    def _switch(self, at: Instant, new: RulePack) -> list[SegmentChange]:
        """``new`` goes live at ``at``: every record re-judged (:class:`streams.engine.switch.Switch`)."""
        remaining = frozenset().union(*(p.pack.traits for p in self.pending)) if self.pending else frozenset()
        switch = Switch(self.pack, new, at, new.traits | remaining)
        changes: list[SegmentChange] = []
        for key in list(self.states):
            state = self.states.get(key)
            if state is None:
                continue
            made, touched = switch.apply(key, state)
            if made or state.held:
                activate(new, key, state, made, state.clock, self.activations, self.stats.activations)
                touched = True
            if touched:
                self.states[key] = state
                self.timers.set(key, state.deadline)
            if made:
                self._count(made)
                changes += made
        self.pack = new
        self.history_traits.clear()
        if self.clock is None or at > self.clock:
            self.clock = at
        self._pending_changed()
        return changes

    def tick(self, clock: Instant) -> list[SegmentChange]:
        """The live clock moved to ``clock`` with no event: fire the deadlines strictly before it.

        Strictly, so that an event stamped exactly ``clock`` that arrives next is still applied
        before a deadline at the same instant, as it would be in replay: ticks change nothing
        but when a change is noticed.
        """
        return self.advance(clock, inclusive=False)

    def finish(self, until: Instant | None = None) -> list[SegmentChange]:
        """End of input: the clock reaches ``until`` (replay's ``--until``) or stays at the last event."""
        target = until if until is not None else self.clock
        return [] if target is None else self.advance(target, inclusive=True)

    def _late(self, event: Envelope, raw: bytes, clock: Instant) -> BadEvent:
        ts, lateness = event.instant, self.pack.allowed_lateness
        self.stats.bad += 1
        return BadEvent(
            f"late: ts {format_instant(ts)} is {format_duration(clock - ts)} behind the clock "
            f"{format_instant(clock)}; the allowed lateness is {format_duration(lateness)}",
            raw, event_id=event.event_id)

    # --- identity and erasure ------------------------------------------------------------------

    def _drop_visitor(self, anon: str) -> None:
        """A visitor that could not be merged: its record goes, as it went from the partition that
        handed it over."""
        if anon and anon not in self.aliases:
            self.states.pop(anon, None)
            self.timers.discard(anon)

    def _merge(self, key: str, state: CustomerState, anon: str,
               merged: tuple[str, CustomerState | None] | None) -> None:
        if anon and anon != key:
            other = merged[1] if merged is not None else self.states.pop(anon, None)
            if other is not None:
                core.merge(self.pack, state, other, anon, self.shadows)
                self.timers.discard(anon)
                core.keep_newest(state, self.limits.max_recent_events)
                for sku in list(state.cart)[self.limits.max_cart_lines:]:  # the visitor's, added last
                    del state.cart[sku]
            self._set_alias(anon, key)
            if anon not in state.anon_ids:
                state.anon_ids.append(anon)

    def _erase(self, key: str, state: CustomerState, ts: Instant, changes: list[SegmentChange]) -> None:
        erased = core.erase(self.pack, key, state, ts)
        cancel_all(key, state, max(ts, state.clock), self.activations)
        self._count(erased)
        changes += erased
        for anon in state.anon_ids:
            self._drop_alias(anon)
            self.states.pop(anon, None)
        del self.states[key]
        self.timers.discard(key)
        self._mark_erased(key, max(ts, state.clock))

    def _set_alias(self, anon: str, key: str) -> None:
        if self.owns is None or self.owns(anon):
            self.aliases[anon] = key

    def _drop_alias(self, anon: str) -> None:
        if self.owns is None or self.owns(anon):
            self.aliases.pop(anon, None)
        else:
            self.unlinked.append(anon)

    def _mark_erased(self, key: str, at: Instant) -> None:
        self.erased[key] = at
        heapq.heappush(self.expiring, (at, key))
        self._forget_old_erasures()

    def _forget_old_erasures(self) -> None:
        """Past the allowed lateness no event of the old life can arrive: drop the marker."""
        expiring = self.expiring
        if self.clock is None or not expiring:
            return
        horizon = self.clock - self.pack.allowed_lateness
        while expiring and expiring[0][0] < horizon:
            at, key = heapq.heappop(expiring)
            if self.erased.get(key) == at:
                del self.erased[key]

    def _count(self, changes: list[SegmentChange]) -> None:
        for change in changes:
            self.stats.changes[change.segment, change.change] += 1
            self.sizes[change.segment] += 1 if change.change == ENTERED else -1

    # --- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(
            Snapshot(self.clock, dict(self.states), dict(self.aliases), dict(self.erased)))

    @classmethod
    def restore(cls, pack: RulePack, data: bytes) -> Engine:
        snap = msgspec.msgpack.decode(data, type=Snapshot)
        return cls(pack, states=snap.states, aliases=snap.aliases, clock=snap.clock, erased=snap.erased)
