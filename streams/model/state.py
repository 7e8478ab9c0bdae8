"""One compact record per customer: everything the rules read, nothing more.

The record is a msgspec Struct encoded as a msgpack array with trailing defaults left out,
so an empty field costs one byte or nothing, and new fields may only ever be appended (with
a default) to keep old changelogs readable. Windows exist only for the windows the loaded
rule pack declares; the cart only holds skus with a positive quantity.

Instances are mutated in place by :mod:`streams.engine.customer` on the hot path; the drivers own the
copies that must survive (a faust table, a replay snapshot).
"""

from __future__ import annotations

from typing import Any

import msgspec

from streams.model.clock import Instant


class CustomerState(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    clock: Instant = 0
    """The customer's own "now": the latest event time applied or deadline fired."""
    identified: bool = False
    """False while the record belongs to an anonymous visitor; rules are evaluated only once true."""
    first_seen: Instant | None = None
    last_seen: Instant | None = None
    events: int = 0
    device: str | None = None
    channel: str | None = None
    first_channel: str | None = None
    cart: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    """sku -> [quantity, unit price or None]."""
    last_cart_activity: Instant | None = None
    last_checkout_at: Instant | None = None
    orders: int = 0
    spend: float = 0.0
    """Lifetime spend: order totals minus refunded amounts."""
    first_order_at: Instant | None = None
    last_order_at: Instant | None = None
    max_order: float | None = None
    refunds: int = 0
    refunded: float = 0.0
    consent_email: bool | None = None
    consent_sms: bool | None = None
    consent_push: bool | None = None
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    windows: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    members: dict[str, int] = msgspec.field(default_factory=dict)
    """segment -> number of transitions so far; odd means member. Feeds the change_id."""
    deadline: Instant | None = None
    """The next instant at which time alone may change a membership; mirrors the timer index."""
    seen: list[int] = msgspec.field(default_factory=list)
    """Hashes of the ids of the events applied within the allowed lateness (and of their order
    ids), to drop duplicates; in the order they came, with their times in ``seen_at``."""
    anon_ids: list[str] = msgspec.field(default_factory=list)
    """Anonymous ids merged into this customer, so erasure can forget them too."""
    consent_at: Instant | None = None
    """Time of the latest consent update applied, so a late one cannot grant what a newer one revoked."""
    traits_at: Instant | None = None
    """Time of the latest profile update applied, so a late one cannot overwrite newer traits."""
    origin: int = 0
    """Hash of the event id that started this record: after an erasure a customer id may start a
    new life, and its changes must not reuse the change_ids of the old one."""
    positions: dict[str, int] = msgspec.field(default_factory=dict)
    """Source (a topic partition) -> position (offset) of the latest of its messages applied
    here. The live worker passes positions, so a message redelivered after a crash is
    recognised whatever its id and however many came after it."""
    seen_at: list[int] = msgspec.field(default_factory=list)
    """The event time, in whole seconds, of each id in ``seen``."""
    activated: dict[str, int] = msgspec.field(default_factory=dict)
    """segment -> time of its latest activation, for its cool-down."""
    sent: dict[str, list[int]] = msgspec.field(default_factory=dict)
    """channel -> send times of its latest activations (as many as its cap counts)."""
    held: list[list[Any]] = msgspec.field(default_factory=list)
    """Activations not gone out yet: [activation_id, channel, segment, send_at, change_id,
    the segment's activation time before this one (-1: another channel sent this one), [its
    once_per value before] or None]; the last two undo the activation if it is cancelled."""
    cart_started_at: Instant | None = None
    """Time of the add_to_cart that put an item into an empty cart: which cart this is."""
    activated_on: dict[str, Any] = msgspec.field(default_factory=dict)
    """segment -> the value of its ``once_per`` field at its latest activation."""
    since: dict[str, int] = msgspec.field(default_factory=dict)
    """segment -> when the customer entered it, while they are in it (``time_in_segment``)."""

    @property
    def cart_items(self) -> int:
        return sum([line[0] for line in self.cart.values()]) if self.cart else 0

    @property
    def cart_value(self) -> float:
        return float(sum(line[0] * (line[1] or 0) for line in self.cart.values()))

    @property
    def cart_skus(self) -> int:
        return len(self.cart)

    def is_member(self, segment: str) -> bool:
        return self.members.get(segment, 0) % 2 == 1

    def memberships(self) -> list[str]:
        return sorted(name for name, count in self.members.items() if count % 2 == 1)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CustomerState)


def encode(state: CustomerState) -> bytes:
    return _encoder.encode(state)


def decode(data: bytes) -> CustomerState:
    return _decoder.decode(data)
