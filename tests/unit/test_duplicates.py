"""Duplicates never count twice within the allowed lateness, however many events came between:
by ``event_id``, and for orders and refunds by ``order_id``; in state that forgets what is
older than the allowed lateness."""

from __future__ import annotations

import pytest

from streams.model import state as state_codec
from streams.model.state import CustomerState

from scenario import Scenario, days, event, minutes

pytestmark = pytest.mark.unit


def test_an_order_re_sent_after_a_hundred_other_events_counts_once() -> None:
    s = Scenario()
    order = event("order_completed", 0, "c1", event_id="order-1", total=50, order_id="o-1")
    s.send(order)
    for i in range(100):
        s.page_view("c1", minutes(i + 1))
    s.send(order)
    state = s.engine.state_of("c1")
    assert state is not None and (state.orders, state.spend) == (1, 50.0)
    assert s.engine.stats.duplicates == 1
    assert s.transitions("c1", "repeat_customer") == []


def test_an_order_re_sent_under_another_event_id_counts_once_and_so_does_its_refund() -> None:
    s = Scenario()
    s.order_completed("c1", 0, event_id="a", total=80, order_id="o-7")
    s.order_completed("c1", minutes(5), event_id="b", total=80, order_id="o-7")
    s.order_refunded("c1", minutes(10), event_id="c", amount=30, order_id="o-7")
    s.order_refunded("c1", minutes(15), event_id="d", amount=30, order_id="o-7")
    s.order_completed("c1", minutes(20), event_id="e", total=10, order_id="o-8")
    state = s.engine.state_of("c1")
    assert state is not None
    assert (state.orders, state.refunds, state.spend) == (2, 1, 60.0)
    assert s.engine.stats.duplicates == 2


def test_a_duplicate_older_than_the_allowed_lateness_is_late_not_counted() -> None:
    s = Scenario()
    order = event("order_completed", 0, "c1", event_id="order-1", total=50, order_id="o-1")
    s.send(order)
    s.page_view("c1", days(8))
    s.send(order)
    [bad] = s.bad
    assert bad.reason.startswith("late: ")
    state = s.engine.state_of("c1")
    assert state is not None and state.orders == 1


def test_ids_older_than_the_allowed_lateness_are_forgotten() -> None:
    s = Scenario()
    for i in range(50):
        s.page_view("c1", minutes(i))
    s.page_view("c1", days(8))
    state = s.engine.state_of("c1")
    assert state is not None and len(state.seen) == len(state.seen_at) == 1


def test_a_record_written_before_event_times_were_kept_still_drops_its_duplicates() -> None:
    s = Scenario()
    s.page_view("c1", 0, event_id="p1")
    state = s.engine.state_of("c1")
    assert state is not None
    old = CustomerState(**{**{f: getattr(state, f) for f in state.__struct_fields__}, "seen_at": []})
    s.engine.states["c1"] = state_codec.decode(state_codec.encode(old))
    s.page_view("c1", minutes(1), event_id="p1")
    s.page_view("c1", minutes(2), event_id="p2")
    assert s.engine.stats.duplicates == 1
    state = s.engine.state_of("c1")
    assert state is not None and len(state.seen) == len(state.seen_at) == 2


def test_a_visitors_ids_come_along_at_identify() -> None:
    s = Scenario()
    s.add_to_cart(None, 0, anonymous="v1", event_id="cart-1", sku="A", price=5)
    s.identify("c1", minutes(1), anonymous="v1")
    s.add_to_cart("c1", minutes(2), event_id="cart-1", sku="A", price=5)  # the visitor's, re-sent
    state = s.engine.state_of("c1")
    assert state is not None and state.cart == {"A": [1, 5.0]}
