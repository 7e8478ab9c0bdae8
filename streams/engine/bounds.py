"""How large a customer's record can get under the limits, the check that it fits, and what
an event would take past a bound.

Every part of a record that grows with input is bounded by one limit (:mod:`streams.model.limits`),
so the largest record follows from the limits and the rule pack alone; the worker and replay
refuse limits under which it could pass ``max_state_bytes``. Counting is per msgpack's encoding:
a string of n UTF-8 bytes takes n and a header of at most 5, an integer or float at most 9.
"""

from __future__ import annotations

import msgspec

from streams.engine import customer as core
from streams.errors import SegmenterError
from streams.model.clock import Instant, format_duration
from streams.model.events import Envelope
from streams.model.limits import Limits
from streams.model.state import CustomerState
from streams.model.windows import MAX_ENTRIES
from streams.rules.pack import RulePack

_NUMBER = 9
_HEADER = 5
_SLACK = 1024
"""For what is not counted one by one: the record's own header, booleans, small counters."""


def _text(characters: int) -> int:
    return 4 * characters + _HEADER  # UTF-8: four bytes a character at most


def largest_record(pack: RulePack, limits: Limits, sources: int = 0, source_length: int = 0) -> int:
    """The most bytes a customer's encoded record can take. ``sources``: the topic partitions a
    live worker records positions of (``source_length`` characters each)."""
    scalars = len(CustomerState.__struct_fields__) * _NUMBER
    an_id = _text(limits.max_id_length)
    labels = 3 * an_id  # device, channel, first channel
    cart = _HEADER + limits.max_cart_lines * (an_id + 1 + 2 * _NUMBER)
    trait = max(_NUMBER, _text(limits.max_trait_length))
    traits = _HEADER + sum(_text(len(name)) + trait for name in pack.traits)
    windows = _HEADER + sum((w.keep if w.by is not None else 1) * (
        _text(len(name) + 1 + max(map(len, w.values), default=0)) + _HEADER + 2 * MAX_ENTRIES * _NUMBER)
        for name, w in pack.windows.items())
    # Per segment: the transition count, since when, the latest activation and its once_per value.
    once = max(_NUMBER, trait, an_id)
    members = 4 * _HEADER + sum(4 * _text(len(rule.name)) + 3 * _NUMBER + once for rule in pack.rules)
    members += _activations(pack)
    seen = 2 * _HEADER + limits.max_recent_events * 2 * _NUMBER
    visitors = _HEADER + limits.max_visitor_ids * an_id
    positions = _HEADER + sources * (_text(source_length) + _NUMBER)
    return scalars + labels + cart + traits + windows + members + seen + visitors + positions + _SLACK


def _activations(pack: RulePack) -> int:
    """Sends a channel's cap counts, and activations held (one per segment and channel at most)."""
    channels = pack.activation.channels.values()
    sent = _HEADER + sum(_text(len(c.name)) + _HEADER + (c.cap.count if c.cap else 1) * _NUMBER for c in channels)
    held = _HEADER + sum(len(c.segments) * (_HEADER + 2 * _text(32) + _text(len(c.name)) + _text(max(map(len, c.segments)))
                                           + 3 * _NUMBER + _HEADER + _NUMBER)
                         for c in channels if c.segments)
    return sent + held


def check(pack: RulePack, limits: Limits, sources: int = 0, source_length: int = 0) -> None:
    """Refuse limits under which a record could outgrow ``max_state_bytes``."""
    largest = largest_record(pack, limits, sources, source_length)
    if largest > limits.max_state_bytes:
        settings = ", ".join(f"{name}={value}" for name, value in msgspec.structs.asdict(limits).items())
        raise SegmenterError(
            f"limits: a customer's record could reach {largest} bytes, over max_state_bytes "
            f"({limits.max_state_bytes}); lower max_recent_events, max_cart_lines, max_visitor_ids, "
            f"max_id_length or max_trait_length, or raise max_state_bytes with the changelog topics' "
            f"max.message.bytes ({settings})")


def beyond_limits(pack: RulePack, limits: Limits, key: str, state: CustomerState, event: Envelope, tag: str,
                  ts: Instant, new_ids: int) -> str | None:
    """Why applying the event would take the customer's record past a bound, if it would."""
    horizon = max(state.clock, ts) - pack.allowed_lateness
    core.forget_old(state, horizon)
    if len(state.seen) + new_ids > limits.max_recent_events:
        core.forget_old(state, horizon, thorough=True)
        if len(state.seen) + new_ids > limits.max_recent_events:
            return (f"too many events: {len(state.seen)} ids of this customer's events are "
                    f"remembered within the allowed lateness "
                    f"({format_duration(pack.allowed_lateness)}), the maximum is "
                    f"{limits.max_recent_events} (max_recent_events)")
    if tag == "add_to_cart":
        sku = event.properties.sku  # type: ignore[attr-defined]
        if sku not in state.cart and len(state.cart) >= limits.max_cart_lines:
            return (f"cart lines: the cart holds {len(state.cart)} distinct skus, the maximum is "
                    f"{limits.max_cart_lines} (max_cart_lines) - at `$.properties.sku`")
    elif tag == "identify":
        anon = event.anonymous_id or ""
        if anon != key and anon not in state.anon_ids and len(state.anon_ids) >= limits.max_visitor_ids:
            return (f"visitor ids: {len(state.anon_ids)} visitor ids are merged into this customer, "
                    f"the maximum is {limits.max_visitor_ids} (max_visitor_ids); the visitor's record "
                    f"is dropped - at `$.anonymous_id`")
    elif tag == "profile_updated":
        longest = limits.max_trait_length
        for name, value in event.properties.traits.items():  # type: ignore[attr-defined]
            if name in pack.traits and isinstance(value, str) and len(value) > longest:
                return (f"too long: {len(value)} characters, over the maximum of {longest} "
                        f"(max_trait_length) - at `$.properties.traits.{name}`")
    return None

