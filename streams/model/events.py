"""Input events (docs/contract.md) as msgspec Structs, decoded straight from bytes.

One tagged union over ``type`` and one Decoder built once: decoding, type checks and the
dispatch on the event's kind are a single C call per message. Unknown fields are skipped
(never ``forbid_unknown_fields`` on events: producers add fields before we read them).
A message that fails becomes a :class:`BadEvent` value, not an exception, so a driver can
dead-letter it and go on with the next one.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import msgspec

from streams.model.clock import Instant, format_instant, from_datetime
from streams.model.limits import DEFAULT_LIMITS, Limits

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Amount = Annotated[float, msgspec.Meta(ge=0)]
Quantity = Annotated[int, msgspec.Meta(ge=1)]
AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]

DEFAULT_MAX_CLOCK_SKEW = 5 * 60 * 1_000_000
"""How far ahead of the wall clock an event's ``ts`` may be (5 minutes, in microseconds)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


class Envelope(msgspec.Struct, tag_field="type", kw_only=True, gc=False):
    """Fields every event carries."""

    event_id: NonEmpty
    ts: AwareTime
    customer_id: NonEmpty | None = None
    anonymous_id: NonEmpty | None = None
    session_id: str | None = None
    device: str | None = None
    channel: str | None = None

    @property
    def key(self) -> str:
        """The id the event is routed and stored by: the customer once known, else the visitor."""
        return self.customer_id or self.anonymous_id or ""

    @property
    def instant(self) -> Instant:
        return from_datetime(self.ts)


# --- properties, one Struct per event type that has any -------------------------------


class PageViewProps(msgspec.Struct, gc=False):
    page_type: str = "other"
    url: str | None = None
    category: str | None = None


class ProductViewProps(msgspec.Struct, gc=False):
    sku: str | None = None
    category: str | None = None
    price: Amount | None = None


class SearchProps(msgspec.Struct, gc=False):
    query: str | None = None


class AddToCartProps(msgspec.Struct, gc=False):
    sku: NonEmpty
    category: str | None = None
    price: Amount | None = None
    quantity: Quantity = 1


class RemoveFromCartProps(msgspec.Struct, gc=False):
    sku: NonEmpty
    quantity: Quantity | None = None  # None: all of that sku


class CheckoutStartedProps(msgspec.Struct, gc=False):
    cart_value: Amount | None = None


class OrderItem(msgspec.Struct, gc=False):
    sku: str | None = None
    category: str | None = None
    price: Amount | None = None
    quantity: Quantity = 1


class OrderCompletedProps(msgspec.Struct, gc=False):
    total: Amount
    order_id: str | None = None
    currency: str | None = None
    items: list[OrderItem] = msgspec.field(default_factory=list)


class OrderRefundedProps(msgspec.Struct, gc=False):
    amount: Amount
    order_id: str | None = None


class ProfileUpdatedProps(msgspec.Struct):
    traits: dict[str, Any] = msgspec.field(default_factory=dict)


class ConsentUpdatedProps(msgspec.Struct, gc=False):
    email: bool | None = None
    sms: bool | None = None
    push: bool | None = None


# --- the event types ------------------------------------------------------------------


class PageView(Envelope, tag="page_view"):
    properties: PageViewProps = msgspec.field(default_factory=PageViewProps)


class ProductView(Envelope, tag="product_view"):
    properties: ProductViewProps = msgspec.field(default_factory=ProductViewProps)


class Search(Envelope, tag="search"):
    properties: SearchProps = msgspec.field(default_factory=SearchProps)


class AddToCart(Envelope, tag="add_to_cart"):
    properties: AddToCartProps


class RemoveFromCart(Envelope, tag="remove_from_cart"):
    properties: RemoveFromCartProps


class CheckoutStarted(Envelope, tag="checkout_started"):
    properties: CheckoutStartedProps = msgspec.field(default_factory=CheckoutStartedProps)


class QuoteRequest(Envelope, tag="quote_request"):
    pass


class DemoRequest(Envelope, tag="demo_request"):
    pass


class Signup(Envelope, tag="signup"):
    pass


class Login(Envelope, tag="login"):
    pass


class Identify(Envelope, tag="identify"):
    pass


class OrderCompleted(Envelope, tag="order_completed"):
    properties: OrderCompletedProps


class OrderRefunded(Envelope, tag="order_refunded"):
    properties: OrderRefundedProps


class ProfileUpdated(Envelope, tag="profile_updated"):
    properties: ProfileUpdatedProps = msgspec.field(default_factory=ProfileUpdatedProps)


class ConsentUpdated(Envelope, tag="consent_updated"):
    properties: ConsentUpdatedProps = msgspec.field(default_factory=ConsentUpdatedProps)


class CustomerErased(Envelope, tag="customer_erased"):
    pass


Event = (
    PageView
    | ProductView
    | Search
    | AddToCart
    | RemoveFromCart
    | CheckoutStarted
    | QuoteRequest
    | DemoRequest
    | Signup
    | Login
    | Identify
    | OrderCompleted
    | OrderRefunded
    | ProfileUpdated
    | ConsentUpdated
    | CustomerErased
)

EVENT_TYPES: dict[str, type[Envelope]] = {
    cls.__struct_config__.tag: cls
    for cls in Event.__args__
}

CLICKSTREAM_TYPES = frozenset(
    {
        "page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
        "checkout_started", "quote_request", "demo_request", "signup", "login", "identify",
    }
)
TRANSACTION_TYPES = frozenset({"order_completed", "order_refunded"})
PROFILE_TYPES = frozenset({"profile_updated", "consent_updated", "customer_erased"})
NEEDS_CUSTOMER_ID = TRANSACTION_TYPES | (PROFILE_TYPES - {"customer_erased"}) | {"identify"}
"""An erasure may name a visitor id alone."""


class BadEvent(msgspec.Struct, gc=False):
    """A message that could not be applied, with the reason and the bytes as they came.

    ``where`` is filled by the driver: ``file:line`` in replay, ``topic[partition]@offset`` live.
    """

    reason: str
    raw: bytes
    where: str = ""
    event_id: str | None = None


_decoder = msgspec.json.Decoder(Event)


def decode(raw: bytes, *, limits: Limits = DEFAULT_LIMITS, latest: Instant | None = None) -> Envelope | BadEvent:
    """One message to an event, or to a BadEvent naming the field and the problem; never an
    exception, whatever the bytes. An event stamped after ``latest`` (the wall clock plus the
    allowed skew) is a bad event: it would move its partition's clock and fire every deadline
    there at once."""
    max_bytes, max_nesting = limits.max_event_bytes, limits.max_nesting
    if len(raw) > max_bytes:
        return BadEvent(f"event is {len(raw)} bytes, over the maximum of {max_bytes}", raw)
    depth = nesting(raw, max_nesting)
    if depth > max_nesting:
        return BadEvent(f"nesting: objects and arrays nested more than {max_nesting} deep", raw)
    try:
        event: Envelope = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return BadEvent(_describe(str(exc), raw), raw)
    except msgspec.DecodeError as exc:
        return BadEvent(f"not valid JSON: {exc}", raw)
    except RecursionError:  # a limit set above what the decoder can follow
        return BadEvent("nesting: objects and arrays nested too deep for the decoder", raw)
    problem = _check_ids(event) or _check_bounds(event, limits, raw)
    if problem:
        return BadEvent(problem, raw, event_id=event.event_id)
    if latest is not None and event.instant > latest:
        return BadEvent(f"future: ts {format_instant(event.instant)} is after "
                        f"{format_instant(latest)}, the wall clock plus the allowed clock skew",
                        raw, event_id=event.event_id)
    return event


def nesting(raw: bytes, limit: int) -> int:
    """How deep objects and arrays nest in ``raw``, counted exactly only when it could exceed
    ``limit`` (the number of opening brackets bounds it): decoding a deeply nested message
    would exhaust the decoder's recursion instead of saying what is wrong."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return 0
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", raw)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _describe(message: str, raw: bytes) -> str:
    """msgspec says ``Invalid value 'x' - at `$.type``` for an unknown type: say which types exist."""
    if message.startswith("Invalid value") and message.endswith("`$.type`"):
        return f"{message}; known types: {', '.join(sorted(EVENT_TYPES))}"
    return message


def _check_ids(event: Envelope) -> str | None:
    tag = event.__struct_config__.tag
    if event.customer_id is None and event.anonymous_id is None:
        return "neither `customer_id` nor `anonymous_id` is set - at `$`; one of the two is required"
    if event.customer_id is None and tag in NEEDS_CUSTOMER_ID:
        return f"`customer_id` is required for `{tag}` events - at `$.customer_id`"
    if tag == "identify" and event.anonymous_id is None:
        return "`identify` links `anonymous_id` to `customer_id`: `anonymous_id` is missing - at `$.anonymous_id`"
    return None


def _check_bounds(event: Envelope, limits: Limits, raw: bytes) -> str | None:
    """Ids of bounded length and without control characters; finite amounts and quantities under
    their maximums. What a customer's record keeps of an event is bounded by these. (Most events
    pass: a message no longer than an id may be holds no string that is too long, and one with
    no escape and no DEL no control character, since JSON strings cannot hold them raw; the
    properties are looked at only for the types that carry ids or amounts.)"""
    short = len(raw) <= limits.max_id_length
    if not short or b"\\" in raw or b"\x7f" in raw:
        ids = event.event_id + (event.customer_id or "") + (event.anonymous_id or "")
        labels = (event.session_id or "") + (event.device or "") + (event.channel or "")
        if len(ids) + len(labels) > limits.max_id_length or _CONTROL.search(ids):
            problem = _check_envelope(event, limits)
            if problem:
                return problem
    props = getattr(event, "properties", None)
    fields = _BOUNDED.get(type(props))
    return None if fields is None else _check_properties(props, fields, limits, short)


def _check_envelope(event: Envelope, limits: Limits) -> str | None:
    longest = limits.max_id_length
    for name in ("event_id", "customer_id", "anonymous_id", "session_id", "device", "channel"):
        value = getattr(event, name)
        if value is not None:
            if len(value) > longest:
                return _too_long(f"$.{name}", value, longest)
            if name.endswith("_id") and name != "session_id" and _CONTROL.search(value):
                return f"control character: `{name}` contains a control character - at `$.{name}`"
    return None


def _check_properties(props: Any, fields: tuple[tuple[str, ...], tuple[str, ...]], limits: Limits,
                      short: bool = False) -> str | None:
    ids, amounts = fields
    longest = limits.max_id_length
    for name in () if short else ids:
        value = getattr(props, name)
        if value is not None and len(value) > longest:
            return _too_long(f"$.properties.{name}", value, longest)
    for name in amounts:
        value = getattr(props, name)
        if value is not None and not value <= limits.max_amount:
            return _too_much(f"$.properties.{name}", value, limits.max_amount)
    quantity = getattr(props, "quantity", None)
    if quantity is not None and quantity > limits.max_quantity:
        return _too_many("$.properties.quantity", quantity, limits.max_quantity)
    for i, item in enumerate(getattr(props, "items", ())):
        where = f"$.properties.items[{i}]"
        if item.sku is not None and len(item.sku) > longest:
            return _too_long(f"{where}.sku", item.sku, longest)
        if item.price is not None and not item.price <= limits.max_amount:
            return _too_much(f"{where}.price", item.price, limits.max_amount)
        if item.quantity > limits.max_quantity:
            return _too_many(f"{where}.quantity", item.quantity, limits.max_quantity)
    return None


_BOUNDED: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ProductViewProps: (("sku",), ("price",)),
    AddToCartProps: (("sku",), ("price",)),
    RemoveFromCartProps: (("sku",), ()),
    CheckoutStartedProps: ((), ("cart_value",)),
    OrderCompletedProps: (("order_id",), ("total",)),
    OrderRefundedProps: (("order_id",), ("amount",)),
}
"""Properties types with ids or amounts -> (their id fields, their amount fields)."""


def _too_long(where: str, value: str, limit: int) -> str:
    return f"too long: {len(value)} characters, over the maximum of {limit} - at `{where}`"


def _too_much(where: str, value: float, limit: float) -> str:
    return f"amount: {value!r} is over the maximum of {limit:g} or not a finite number - at `{where}`"


def _too_many(where: str, value: int, limit: int) -> str:
    return f"quantity: {value} is over the maximum of {limit} - at `{where}`"


def type_of(event: Envelope) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]
