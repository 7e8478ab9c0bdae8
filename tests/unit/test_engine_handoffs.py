"""Two engines that each own part of the keys (the live worker's partitions) give the same
changes as one engine holding everyone (replay), when a visitor's record is handed over on
``identify``, its later events are routed to the customer, and an erasure unlinks it."""

from __future__ import annotations

import pytest

from streams.engine import Engine
from streams.model.events import Envelope, decode

from scenario import default_pack, event, minutes

pytestmark = pytest.mark.unit

VISITOR, CUSTOMER = "v1", "c1"


def envelope(raw: bytes) -> Envelope:
    decoded = decode(raw)
    assert isinstance(decoded, Envelope)
    return decoded


def history() -> list[bytes]:
    return [
        event("add_to_cart", 0, anonymous=VISITOR, sku="A", price=30.0, category="shoes"),
        event("identify", minutes(1), CUSTOMER, anonymous=VISITOR),
        event("add_to_cart", minutes(2), anonymous=VISITOR, sku="B", price=20.0, category="shoes"),
        event("customer_erased", minutes(50), CUSTOMER),
    ]


def test_split_engines_hand_over_route_and_unlink_like_one_engine() -> None:
    events = history()
    one = Engine(default_pack())
    expected = []
    for raw in events:
        result = one.process(envelope(raw), raw)
        assert isinstance(result, list)
        expected += result

    visitors = Engine(default_pack(), owns=lambda key: key == VISITOR)
    customers = Engine(default_pack(), owns=lambda key: key != VISITOR)
    add, identify, routed, erased = events
    got = []
    got += visitors.process(envelope(add), add)  # type: ignore[arg-type]
    # identify arrives with the customer: the visitor's engine hands its record over.
    handed = visitors.hand_over_visitor(VISITOR, CUSTOMER)
    assert handed is not None and VISITOR not in visitors.states
    got += customers.merge_visitor(VISITOR, handed, envelope(identify), identify)  # type: ignore[arg-type]
    # A later visitor-only event belongs to the customer, on the other engine.
    assert visitors.customer_of(VISITOR) == CUSTOMER
    got += customers.apply_routed(CUSTOMER, envelope(routed), routed)  # type: ignore[arg-type]
    got += customers.process(envelope(erased), erased)  # type: ignore[arg-type]
    # The alias lives with the visitor's engine: the erasure reports it instead of touching it.
    assert customers.take_unlinked() == [VISITOR]
    assert customers.take_unlinked() == []
    assert visitors.customer_of(VISITOR) == CUSTOMER
    visitors.unlink(VISITOR)
    assert visitors.customer_of(VISITOR) is None
    assert visitors.take_unlinked() == []

    assert got == expected
    assert any(c.segment == "cart_abandoner" for c in expected)
    assert customers.state_of(CUSTOMER) is None and one.state_of(CUSTOMER) is None
