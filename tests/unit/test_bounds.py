"""What one message and one customer may take up: each bound a bad event with its own reason,
exact at its limit, and together a record that always fits in one Kafka message."""

from __future__ import annotations

import msgspec
import pytest

from streams.engine.bounds import check, largest_record
from streams.errors import SegmenterError
from streams.model import state as state_codec
from streams.model.events import BadEvent, Envelope, decode
from streams.model.limits import DEFAULT_LIMITS, Limits, from_environ
from streams.model.state import CustomerState
from streams.model.windows import MAX_ENTRIES

from scenario import Scenario, default_pack, event, minutes

pytestmark = pytest.mark.unit


def reason(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    result = decode(raw, limits=limits)
    assert isinstance(result, BadEvent), result
    return result.reason


@pytest.mark.parametrize("field", ["customer_id", "anonymous_id", "event_id", "session_id", "device", "channel"])
def test_an_id_longer_than_the_maximum_is_a_bad_event_and_one_at_it_is_not(field: str) -> None:
    limits = Limits(max_id_length=10)
    body = {"event_id": "e1", "type": "page_view", "customer_id": "c1", "ts": "2026-03-01T00:00:00Z"}
    at_limit = msgspec.json.encode({**body, field: "x" * 10})
    assert isinstance(decode(at_limit, limits=limits), Envelope)
    over = msgspec.json.encode({**body, field: "é" * 11})
    assert reason(over, limits) == f"too long: 11 characters, over the maximum of 10 - at `$.{field}`"


def test_skus_and_order_ids_are_ids_too() -> None:
    limits = Limits(max_id_length=5)
    assert reason(event("add_to_cart", 0, "c1", event_id="e1", sku="s" * 6), limits).endswith(
        "at `$.properties.sku`")
    assert reason(event("order_completed", 0, "c1", event_id="e2", total=5, order_id="o" * 6),
                  limits).endswith("at `$.properties.order_id`")
    items = [{"sku": "a", "price": 1}, {"sku": "b" * 6, "price": 1}]
    assert reason(event("order_completed", 0, "c1", event_id="e3", total=5, items=items),
                  limits).endswith("at `$.properties.items[1].sku`")


def test_a_nul_in_an_id_is_a_bad_event() -> None:
    raw = b'{"event_id":"e1","type":"page_view","customer_id":"c\\u0000","ts":"2026-03-01T00:00:00Z"}'
    assert reason(raw).startswith("control character: `customer_id`")


@pytest.mark.parametrize(("type_", "props", "where"), [
    ("order_completed", {"total": 1e308}, "$.properties.total"),
    ("order_refunded", {"amount": 2e9}, "$.properties.amount"),
    ("add_to_cart", {"sku": "A", "price": 1e12}, "$.properties.price"),
    ("checkout_started", {"cart_value": 1e10}, "$.properties.cart_value"),
    ("order_completed", {"total": 1, "items": [{"sku": "A", "price": 1e300}]}, "$.properties.items[0].price"),
])
def test_an_absurd_amount_is_a_bad_event(type_: str, props: dict[str, object], where: str) -> None:
    text = reason(event(type_, 0, "c1", **props))
    assert text.startswith("amount: ") and text.endswith(f"at `{where}`")


def test_an_amount_at_the_maximum_is_accepted_and_a_quantity_over_it_is_not() -> None:
    assert isinstance(decode(event("order_completed", 0, "c1", total=1e9)), Envelope)
    assert reason(event("add_to_cart", 0, "c1", sku="A", quantity=10_001)).startswith("quantity: 10001 is over")


def test_a_cart_holds_at_most_max_cart_lines_distinct_skus() -> None:
    s = Scenario(limits=Limits(max_cart_lines=3))
    for i, sku in enumerate("ABC"):
        s.add_to_cart("c1", minutes(i), sku=sku, price=1)
    s.add_to_cart("c1", minutes(3), sku="D", price=1)
    s.add_to_cart("c1", minutes(4), sku="A", price=1)  # more of a line it holds: fine
    [bad] = s.bad
    assert bad.reason.startswith("cart lines: the cart holds 3 distinct skus, the maximum is 3")
    state = s.engine.state_of("c1")
    assert state is not None and state.cart == {"A": [2, 1.0], "B": [1, 1.0], "C": [1, 1.0]}


def test_an_identify_of_one_visitor_too_many_is_a_bad_event_and_the_visitor_is_dropped() -> None:
    s = Scenario(limits=Limits(max_visitor_ids=2))
    for i, visitor in enumerate(["v1", "v2", "v3"]):
        s.page_view(None, minutes(i), anonymous=visitor)
        s.identify("c1", minutes(i) + 1, anonymous=visitor)
    s.identify("c1", minutes(5), anonymous="v1")  # one it holds already: fine
    [bad] = s.bad
    assert bad.reason.startswith("visitor ids: 2 visitor ids are merged into this customer, the maximum is 2")
    state = s.engine.state_of("c1")
    assert state is not None and state.anon_ids == ["v1", "v2"]
    assert s.engine.state_of("v3") is None and s.engine.customer_of("v3") is None


def test_only_declared_traits_are_kept_and_only_plain_values() -> None:
    s = Scenario()  # the default pack declares country, company_size and plan
    s.profile_updated("c1", 0, traits={"country": "DE", "email": "a@b.c", "phone": "+49",
                                       "plan": {"nested": "object"}, "company_size": 40})
    state = s.engine.state_of("c1")
    assert state is not None and state.traits == {"country": "DE", "company_size": 40}


def test_a_declared_trait_longer_than_the_maximum_is_a_bad_event_an_undeclared_one_is_ignored() -> None:
    s = Scenario(limits=Limits(max_trait_length=8))
    s.profile_updated("c1", 0, traits={"bio": "x" * 100, "country": "DE"})
    s.profile_updated("c1", 1, traits={"country": "x" * 9})
    [bad] = s.bad
    assert bad.reason == ("too long: 9 characters, over the maximum of 8 (max_trait_length) - "
                          "at `$.properties.traits.country`")
    state = s.engine.state_of("c1")
    assert state is not None and state.traits == {"country": "DE"}


def test_more_events_than_max_recent_events_within_the_allowed_lateness_are_bad_events() -> None:
    s = Scenario(limits=Limits(max_recent_events=5))
    for i in range(6):
        s.page_view("c1", minutes(i))
    [bad] = s.bad
    assert bad.reason.startswith("too many events: 5 ids of this customer's events are remembered within "
                                 "the allowed lateness (1w), the maximum is 5 (max_recent_events)")
    s.page_view("c1", minutes(60 * 24 * 7 + 10))  # a week later the first ones are forgotten
    assert len(s.bad) == 1


def test_eighteen_carts_of_long_skus_leave_a_record_of_bounded_size() -> None:
    s = Scenario()
    for i in range(18):
        s.add_to_cart("c1", minutes(i), sku=f"{i}" + "s" * 60_000, price=1)
    assert len(s.bad) == 18 and all(b.reason.startswith("too long:") for b in s.bad)
    assert s.engine.state_of("c1") is None


def full_record(limits: Limits) -> CustomerState:
    """A record with every part at its bound and every string of four-byte characters."""
    pack = default_pack()
    longest = "😀" * limits.max_id_length
    state = CustomerState(
        clock=2**62, identified=True, first_seen=2**62, last_seen=2**62, events=2**62,
        device=longest, channel=longest, first_channel=longest,
        cart={f"{i:04d}" + longest[4:]: [2**62, 1e308] for i in range(limits.max_cart_lines)},
        traits={name: "😀" * limits.max_trait_length for name in pack.traits},
        windows={name: [2**62, 1e308] * MAX_ENTRIES for name in pack.windows},
        members={rule.name: 2**62 for rule in pack.rules},
        seen=[2**63 + i for i in range(limits.max_recent_events)],
        seen_at=[2**31 + i for i in range(limits.max_recent_events)],
        anon_ids=[f"{i:04d}" + longest[4:] for i in range(limits.max_visitor_ids)],
        positions={f"{'t' * 249}#{p}": 2**62 for p in range(32)},
    )
    for name in ("last_cart_activity", "last_checkout_at", "first_order_at", "last_order_at", "deadline",
                 "consent_at", "traits_at"):
        setattr(state, name, 2**62)
    return state


def test_a_record_at_every_bound_fits_in_what_the_bounds_promise() -> None:
    limits = DEFAULT_LIMITS
    encoded = state_codec.encode(full_record(limits))
    promised = largest_record(default_pack(), limits, sources=32, source_length=249 + 3)
    assert len(encoded) <= promised <= limits.max_state_bytes
    check(default_pack(), limits, sources=32, source_length=252)


def test_limits_that_would_let_a_record_outgrow_one_message_are_refused() -> None:
    with pytest.raises(SegmenterError, match="over max_state_bytes"):
        check(default_pack(), Limits(max_recent_events=100_000))


def test_replay_reads_the_limits_from_the_workers_variables() -> None:
    limits = from_environ({"SEGMENTER_MAX_CART_LINES": "7", "SEGMENTER_MAX_AMOUNT": "500", "OTHER": "x"})
    assert limits == Limits(max_cart_lines=7, max_amount=500.0)
    with pytest.raises(SegmenterError, match="max_cart_lines"):
        from_environ({"SEGMENTER_MAX_CART_LINES": "many"})


def test_a_limit_of_zero_or_less_is_refused_not_taken() -> None:
    from streams.live.settings import load

    with pytest.raises(SegmenterError, match="max_cart_lines"):
        load(environ={"SEGMENTER_MAX_CART_LINES": "0"}).limits()
    with pytest.raises(SegmenterError, match="max_amount"):
        from_environ({"SEGMENTER_MAX_AMOUNT": "-5"})
