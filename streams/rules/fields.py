"""What a rule may read, with its type: the customer's state and, for window filters, the event.

This table is the schema rule files are checked against at load time: a name not here is an
unknown field, and a comparison between two types that differ is a type mismatch. It is also
where the engine learns which event types can change which fields, so that an event
re-evaluates only the rules that read something it touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from streams.model.events import EVENT_TYPES

BOOL = "bool"
NUMBER = "number"
STRING = "string"
TIME = "time"
DURATION = "duration"
NULL = "null"

TRAIT_TYPES = (STRING, NUMBER, BOOL)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    get: Callable[[Any], Any]
    doc: str
    changed_by: frozenset[str]
    """Event types that can change the value (windows add their own)."""
    code: str = ""
    """The value as Python source over the record or event ``s``, when it is more than a call
    of ``get`` (:mod:`streams.rules.compiled`)."""


_ALL = frozenset(EVENT_TYPES) - {"customer_erased"}
SEEN_CHANGED = "@seen"
"""Pseudo event type for the envelope facts that change only now and then (device, channel,
first_seen): an event re-evaluates rules reading them only when it actually changed one."""
_SEEN = frozenset({SEEN_CHANGED, "identify"})
_CART = frozenset({"add_to_cart", "remove_from_cart", "order_completed", "identify"})
_ORDERS = frozenset({"order_completed", "identify"})
_SPEND = frozenset({"order_completed", "order_refunded", "identify"})


def _state_fields() -> dict[str, Field]:
    def f(name: str, typ: str, doc: str, changed_by: frozenset[str], attr: str | None = None) -> Field:
        return Field(name, typ, attrgetter(attr or name), doc, changed_by, f"s.{attr or name}")

    fields = [
        f("now", TIME, "the current time (event time)", frozenset(), attr="clock"),
        f("first_seen", TIME, "time of the customer's first event", _SEEN),
        f("last_seen", TIME, "time of the customer's latest event", _ALL),
        f("events", NUMBER, "number of events ever applied", _ALL),
        f("device", STRING, "device of the latest event that named one", _SEEN),
        f("channel", STRING, "traffic channel of the latest event that named one", _SEEN),
        f("first_channel", STRING, "traffic channel of the first event that named one", _SEEN),
        f("cart_items", NUMBER, "quantity of items in the cart", _CART),
        f("cart_skus", NUMBER, "number of distinct skus in the cart", _CART),
        f("cart_value", NUMBER, "sum of price x quantity over the cart", _CART),
        f("cart_started_at", TIME, "the add_to_cart that put an item into an empty cart (which cart it is)",
          frozenset({"add_to_cart", "identify"})),
        f("last_cart_activity", TIME, "latest add_to_cart, remove_from_cart or checkout_started",
          _CART | {"checkout_started"}),
        f("last_checkout_at", TIME, "latest checkout_started", frozenset({"checkout_started", "identify"})),
        f("orders", NUMBER, "number of completed orders", _ORDERS),
        f("lifetime_spend", NUMBER, "sum of order totals minus refunded amounts", _SPEND, attr="spend"),
        f("first_order_at", TIME, "time of the first order", _ORDERS),
        f("last_order_at", TIME, "time of the latest order", _ORDERS),
        f("max_order_total", NUMBER, "largest order total", _ORDERS, attr="max_order"),
        f("refunds", NUMBER, "number of refunds", frozenset({"order_refunded", "identify"})),
        f("refunded_amount", NUMBER, "sum of refunded amounts", frozenset({"order_refunded", "identify"}),
          attr="refunded"),
    ]
    consent_by = frozenset({"consent_updated", "identify"})
    for channel in ("email", "sms", "push"):
        fields.append(f(f"consent.{channel}", BOOL, f"consent to {channel}; null while unknown",
                        consent_by, attr=f"consent_{channel}"))
    return {field.name: field for field in fields}


STATE_FIELDS: dict[str, Field] = _state_fields()


def trait_field(name: str, typ: str) -> Field:
    def get(state: Any) -> Any:
        value = state.traits.get(name)
        return value if _has_type(value, typ) else None

    return Field(f"traits.{name}", typ, get, f"profile trait {name!r}",
                 frozenset({"profile_updated", "identify"}))


def _has_type(value: Any, typ: str) -> bool:
    """A trait of the wrong type reads as null rather than breaking the comparison."""
    if typ == STRING:
        return isinstance(value, str)
    if typ == BOOL:
        return isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- the event, for the `where` and `value` of a window --------------------------------

_ENVELOPE: dict[str, tuple[str, str]] = {
    "device": (STRING, "device"),
    "channel": (STRING, "channel"),
    "session_id": (STRING, "session_id"),
}

_PROPERTY_TYPES: dict[str, dict[str, str]] = {
    "page_view": {"page_type": STRING, "url": STRING, "category": STRING},
    "product_view": {"sku": STRING, "category": STRING, "price": NUMBER},
    "search": {"query": STRING},
    "add_to_cart": {"sku": STRING, "category": STRING, "price": NUMBER, "quantity": NUMBER},
    "remove_from_cart": {"sku": STRING, "quantity": NUMBER},
    "checkout_started": {"cart_value": NUMBER},
    "order_completed": {"order_id": STRING, "total": NUMBER, "currency": STRING},
    "order_refunded": {"order_id": STRING, "amount": NUMBER},
    "consent_updated": {"email": BOOL, "sms": BOOL, "push": BOOL},
}


def event_fields(event_types: list[str]) -> dict[str, Field]:
    """The fields every one of ``event_types`` has: the envelope's and their common properties."""
    fields = {
        name: Field(name, typ, attrgetter(attr), f"the event's {name}", frozenset(), f"s.{attr}")
        for name, (typ, attr) in _ENVELOPE.items()
    }
    common: dict[str, str] | None = None
    for event_type in event_types:
        props = _PROPERTY_TYPES.get(event_type, {})
        common = dict(props) if common is None else {
            k: v for k, v in common.items() if props.get(k) == v
        }
    for name, typ in (common or {}).items():
        fields[name] = Field(name, typ, attrgetter(f"properties.{name}"), f"the event's {name}",
                             frozenset(), f"s.properties.{name}")
    return fields


def event_property_owner(name: str) -> list[str]:
    """Event types that carry a property of this name, for an error that says where it lives."""
    return sorted(t for t, props in _PROPERTY_TYPES.items() if name in props)


__all__ = [
    "BOOL", "DURATION", "NULL", "NUMBER", "STATE_FIELDS", "STRING", "TIME",
    "TRAIT_TYPES", "Field", "event_fields", "event_property_owner", "trait_field",
]
