"""The segmentation core: one customer's state, one event or instant, the rule pack -> changes.

Nothing here knows of Kafka, files or other customers: the streaming worker and
``segmenter replay`` drive these same functions (through :mod:`streams.engine.engine`), which is
why they give the same output for the same input.

State is mutated in place (it is the hot path); each function returns the segment changes
the step caused, in rule-pack order, and leaves ``state.deadline`` at the next instant at
which time alone could change a membership.

Time (docs/contract.md, Time): the customer's ``now`` is the latest of its applied event times and fired
deadlines. A late event still counts at its own time, but a change it causes is stamped with
``now``, never earlier; ``last_*`` times keep their latest value.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from streams.engine.counting import keep_most_counted
from streams.engine.judge import consent_of, plans_of
from streams.model import windows
from streams.model.changes import SegmentChange, make
from streams.model.clock import SECOND, Instant
from streams.model.events import Envelope
from streams.model.state import CustomerState
from streams.rules.pack import KEY, RulePack, WindowDef

ORDER_TYPES = frozenset({"order_completed", "order_refunded"})


def event_hash(event_id: str) -> int:
    """64 stable bits of an event id: CRC-32 and Adler-32 side by side, both C-speed and, unlike
    ``hash()``, the same in every process (the ids are saved in the changelog)."""
    data = event_id.encode()
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def duplicate_keys(event: Envelope, tag: str) -> tuple[int, ...]:
    """What makes an event a duplicate: its id, and for an order or a refund its ``order_id``."""
    key = event_hash(event.event_id)
    if tag in ORDER_TYPES:
        order_id = event.properties.order_id  # type: ignore[attr-defined]
        if order_id is not None:
            return key, event_hash(f"{tag}\x00{order_id}")
    return (key,)


def seen_before(state: CustomerState, keys: tuple[int, ...]) -> bool:
    """Whether any of :func:`duplicate_keys` (one or two) is remembered."""
    seen = state.seen
    return keys[0] in seen or (len(keys) > 1 and keys[1] in seen)


def forget_old(state: CustomerState, horizon: Instant, *, thorough: bool = False) -> None:
    """Forget the ids of events before ``horizon`` (the clock less the allowed lateness): a
    duplicate of one of them would be late, and dropped as late. Ids are kept in the order
    they came, which is mostly time order: unless ``thorough``, the list is filtered only when
    its first id is due, so that most events cost one comparison."""
    seen, at = state.seen, state.seen_at
    if len(at) != len(seen):  # a record written before the times were kept: count them as now
        at[:] = [state.clock // SECOND] * len(seen)
    limit = horizon // SECOND
    if at and (thorough or at[0] < limit):
        keep = [i for i, t in enumerate(at) if t >= limit]
        state.seen = [seen[i] for i in keep]
        state.seen_at = [at[i] for i in keep]


def keep_newest(state: CustomerState, most: int) -> None:
    """At most ``most`` remembered ids, the latest by event time (after a merge)."""
    if len(state.seen) > most:
        pairs = sorted(zip(state.seen_at, state.seen, strict=True))[-most:]
        state.seen_at = [t for t, _ in pairs]
        state.seen = [k for _, k in pairs]


def remember(state: CustomerState, keys: tuple[int, ...], ts: Instant) -> None:
    second = ts // SECOND
    for key in keys:
        state.seen.append(key)
        state.seen_at.append(second)


# --- applying an event -----------------------------------------------------------------------


def apply_event(pack: RulePack, key: str, state: CustomerState, event: Envelope, tag: str, ts: Instant,
                *, evaluate_all: bool = False, traits: frozenset[str] | None = None) -> list[SegmentChange]:
    """Apply one event at time ``ts``; the customer's due deadlines before ``ts`` have fired.
    ``traits``: the traits to keep, when a pending pack declares more than the live one."""
    now = state.clock if state.clock > ts else ts
    state.clock = now
    seen_changed = _update_common(state, event, ts)
    if tag == "profile_updated":
        _profile_updated(state, event, ts, pack.traits if traits is None else traits)
    else:
        update = _UPDATES.get(tag)
        if update is not None:
            update(state, event, ts)
    plans = pack.plans or plans_of(pack)
    counted = plans.count(tag)(event, state, ts)
    if not state.identified:
        return []
    deadline = state.deadline
    due = deadline is not None and deadline <= now
    changes: list[SegmentChange] = []
    if evaluate_all:
        state.deadline = plans.whole(state, key, now, changes, None)
    else:  # the deadline of a rule the event cannot change stays, unless it is reached
        plan = plans.step(tag, due, seen_changed, counted)
        state.deadline = plan(state, key, now, changes, None if due else deadline)
    return changes


def fire(pack: RulePack, key: str, state: CustomerState, at: Instant) -> list[SegmentChange]:
    """Time reached ``at``, one of this customer's deadlines: re-evaluate what time can change."""
    changes: list[SegmentChange] = []
    state.deadline = (pack.plans or plans_of(pack)).fire(state, key, at, changes, move_clock)
    return changes


def move_clock(pack: RulePack, state: CustomerState, at: Instant) -> None:
    """The record's clock moves to ``at``; what expired by then leaves its windows."""
    if at > state.clock:
        state.clock = at
    now = state.clock
    for window in pack.windows.values():
        for name in (window.name,) if window.by is None else window.keys(state):
            entries = state.windows.get(name)
            if entries is not None:
                windows.prune(entries, now, window.length)
                if not entries:
                    del state.windows[name]


def erase(pack: RulePack, key: str, state: CustomerState, ts: Instant) -> list[SegmentChange]:
    """``customer_erased``: exit every segment with an empty reason. The caller drops the state."""
    at = state.clock if state.clock > ts else ts
    changes = []
    consent = consent_of(state)
    for rule in pack.rules:
        count = state.members.get(rule.name, 0)
        if count % 2 == 1:
            changes.append(make(key, rule.name, count + 1, at, {}, consent, rule.version, state.origin,
                                pack.version))
    # Segments no longer in the pack still had members: exit them too, so nobody stays "in".
    known = {rule.name for rule in pack.rules}
    for name, count in sorted(state.members.items()):
        if name not in known and count % 2 == 1:
            changes.append(make(key, name, count + 1, at, {}, consent, 0, state.origin, pack.version))
    return changes


def merge(pack: RulePack, state: CustomerState, other: CustomerState, other_key: str,
          shadows: dict[str, WindowDef] | None = None) -> None:
    """Fold an anonymous visitor's record into the customer's (``identify``); ``shadows``: the
    windows kept for a pending pack besides the live ones."""
    if other.last_seen is not None and (state.last_seen is None or other.last_seen > state.last_seen):
        state.device = other.device or state.device
        state.channel = other.channel or state.channel
    if other.first_seen is not None and (state.first_seen is None or other.first_seen < state.first_seen):
        state.first_channel = other.first_channel or state.first_channel
    state.clock = max(state.clock, other.clock)
    state.first_seen = _min(state.first_seen, other.first_seen)
    state.last_seen = _max(state.last_seen, other.last_seen)
    state.events += other.events
    if other.cart:
        state.cart_started_at = other.cart_started_at if not state.cart else _min(
            state.cart_started_at, other.cart_started_at)
    for sku, (quantity, price) in other.cart.items():
        line = state.cart.get(sku)
        if line is None:
            state.cart[sku] = [quantity, price]
        else:
            line[0] += quantity
            line[1] = line[1] if line[1] is not None else price
    state.last_cart_activity = _max(state.last_cart_activity, other.last_cart_activity)
    state.last_checkout_at = _max(state.last_checkout_at, other.last_checkout_at)
    state.orders += other.orders
    state.spend += other.spend
    state.first_order_at = _min(state.first_order_at, other.first_order_at)
    state.last_order_at = _max(state.last_order_at, other.last_order_at)
    state.max_order = _max(state.max_order, other.max_order)
    state.refunds += other.refunds
    state.refunded += other.refunded
    for channel in ("consent_email", "consent_sms", "consent_push"):
        if getattr(state, channel) is None:
            setattr(state, channel, getattr(other, channel))
    state.traits = {**other.traits, **state.traits}
    state.consent_at = _max(state.consent_at, other.consent_at)
    state.traits_at = _max(state.traits_at, other.traits_at)
    keyed = set()
    for name, entries in other.windows.items():
        base = name.split(KEY, 1)[0]
        window = pack.windows.get(base)
        if window is None and shadows:
            window = shadows.get(base)
        if window is None:
            continue
        into = state.windows.setdefault(name, [])
        windows.merge(into, entries, state.clock, window.length, windows.COMBINE[window.aggregate])
        if not into:
            del state.windows[name]
        elif window.by is not None:
            keyed.add(window)
    for window in keyed:
        keep_most_counted(state, window)
    own = set(state.seen)
    times = other.seen_at if len(other.seen_at) == len(other.seen) else [other.clock // SECOND] * len(other.seen)
    for key, second in zip(other.seen, times, strict=True):
        if key not in own:
            state.seen.append(key)
            state.seen_at.append(second)
    for source, position in other.positions.items():
        if position > state.positions.get(source, -1):
            state.positions[source] = position
    for anon in [*other.anon_ids, other_key]:
        if anon not in state.anon_ids:
            state.anon_ids.append(anon)


# --- state updates per event type ---------------------------------------------------------------


def _min(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None or a <= b else b


def _max(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None or a >= b else b


def _update_common(state: CustomerState, event: Envelope, ts: Instant) -> bool:
    """Envelope facts; True when device, channel, first_seen or first_channel changed."""
    state.events += 1
    changed = False
    if state.last_seen is None or ts >= state.last_seen:
        state.last_seen = ts
        device, channel = event.device, event.channel
        if device is not None and device != state.device:
            state.device = device
            changed = True
        if channel is not None and channel != state.channel:
            state.channel = channel
            changed = True
    if state.first_seen is None or ts < state.first_seen:
        state.first_seen = ts
        changed = True
        if event.channel is not None:
            state.first_channel = event.channel
    elif state.first_channel is None and event.channel is not None:
        state.first_channel = event.channel
        changed = True
    return changed


def _add_to_cart(state: CustomerState, event: Any, ts: Instant) -> None:
    props = event.properties
    line = state.cart.get(props.sku)
    if not state.cart:
        state.cart_started_at = ts
    if line is None:
        state.cart[props.sku] = [props.quantity, props.price]
    else:
        line[0] += props.quantity
        if props.price is not None:
            line[1] = props.price
    state.last_cart_activity = _max(state.last_cart_activity, ts)


def _remove_from_cart(state: CustomerState, event: Any, ts: Instant) -> None:
    props = event.properties
    line = state.cart.get(props.sku)
    if line is not None:
        line[0] = 0 if props.quantity is None else line[0] - props.quantity
        if line[0] <= 0:
            del state.cart[props.sku]
    state.last_cart_activity = _max(state.last_cart_activity, ts)


def _checkout_started(state: CustomerState, event: Any, ts: Instant) -> None:
    state.last_cart_activity = _max(state.last_cart_activity, ts)
    state.last_checkout_at = _max(state.last_checkout_at, ts)


def _order_completed(state: CustomerState, event: Any, ts: Instant) -> None:
    total = event.properties.total
    state.orders += 1
    state.spend += total
    state.first_order_at = _min(state.first_order_at, ts)
    state.last_order_at = _max(state.last_order_at, ts)
    state.max_order = _max(state.max_order, total)
    # A late order does not empty a cart that was touched after it.
    if state.last_cart_activity is None or ts >= state.last_cart_activity:
        state.cart.clear()


def _order_refunded(state: CustomerState, event: Any, ts: Instant) -> None:
    amount = event.properties.amount
    state.refunds += 1
    state.refunded += amount
    state.spend -= amount


def _profile_updated(state: CustomerState, event: Any, ts: Instant, declared: frozenset[str]) -> None:
    """Declared traits merge (null deletes); a late update only fills traits not already known.
    Nothing undeclared is kept, nor a value that is not a string, a number or a boolean."""
    late = state.traits_at is not None and ts < state.traits_at
    for name, value in event.properties.traits.items():
        if name not in declared or (late and name in state.traits):
            continue
        if value is None:
            state.traits.pop(name, None)
        elif isinstance(value, str | int | float | bool):
            state.traits[name] = value
    state.traits_at = _max(state.traits_at, ts)


def _consent_updated(state: CustomerState, event: Any, ts: Instant) -> None:
    """Absent channels are unchanged. A late update may revoke consent but never grant it."""
    late = state.consent_at is not None and ts < state.consent_at
    props = event.properties
    for channel, value in (("email", props.email), ("sms", props.sms), ("push", props.push)):
        if value is not None and not (late and value):
            setattr(state, f"consent_{channel}", value)
    state.consent_at = _max(state.consent_at, ts)


_UPDATES: dict[str, Callable[[CustomerState, Any, Instant], None]] = {
    "add_to_cart": _add_to_cart,
    "remove_from_cart": _remove_from_cart,
    "checkout_started": _checkout_started,
    "order_completed": _order_completed,
    "order_refunded": _order_refunded,
    "consent_updated": _consent_updated,
}
