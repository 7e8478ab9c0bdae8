"""Erasure is never late, leaves a marker even for a customer nobody holds, and works for a
visitor id alone."""

from __future__ import annotations

import pytest

from scenario import Scenario, days, minutes

pytestmark = pytest.mark.unit


def test_an_erasure_older_than_the_allowed_lateness_still_forgets_the_customer() -> None:
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A", price=10.0)
    s.advance(minutes(30))
    assert "cart_abandoner" in s.members("c1")
    s.page_view("c2", days(10))  # the clock is now ten days ahead: seven are allowed
    members = s.members("c1")
    exits = s.customer_erased("c1", minutes(40))
    assert not s.bad
    assert s.members("c1") == [] and s.engine.state_of("c1") is None
    assert sorted(c.segment for c in exits) == sorted(members)
    assert all(c.change == "exited" and c.reason == {} for c in exits)


def test_an_erasure_of_a_customer_nobody_holds_keeps_their_late_events_out() -> None:
    s = Scenario()
    s.page_view("c2", minutes(10))
    s.customer_erased("c1", minutes(5))
    s.add_to_cart("c1", minutes(1), sku="A", price=10.0)  # from before the erasure, arriving after
    assert s.engine.state_of("c1") is None
    assert s.engine.stats.after_erasure == 1
    s.add_to_cart("c1", minutes(20), sku="A", price=10.0)  # a new life, after the erasure
    assert s.engine.state_of("c1") is not None


def test_a_visitor_id_can_be_erased_on_its_own() -> None:
    s = Scenario()
    s.add_to_cart(None, 0, anonymous="v1", sku="A", price=10.0)
    s.advance(minutes(30))
    members = s.members("v1")
    assert s.engine.state_of("v1") is not None  # visitors are in no segment of the default pack
    exits = s.customer_erased(None, minutes(31), anonymous="v1")
    assert not s.bad, s.bad
    assert s.engine.state_of("v1") is None
    assert sorted(c.segment for c in exits) == sorted(members)
    s.add_to_cart(None, minutes(20), anonymous="v1", sku="B", price=10.0)  # older: stays out
    assert s.engine.state_of("v1") is None


def test_an_erasure_marker_expires_once_the_allowed_lateness_has_passed_with_no_other_erasure() -> None:
    s = Scenario()
    s.customer_erased("c1", minutes(5))
    s.page_view("c2", days(7))
    assert "c1" in s.engine.erased, "within the allowed lateness the marker stays"
    s.advance(days(7) + minutes(6))  # time alone, as an idle partition's clock moves
    assert "c1" not in s.engine.erased
    s.page_view("c1", minutes(1))  # from before the erasure, but late now: dropped as late
    assert s.engine.state_of("c1") is None and s.bad[-1].reason.startswith("late: ")


def test_markers_restored_from_the_store_expire_too() -> None:
    from streams.engine import Engine

    s = Scenario()
    s.customer_erased("c1", minutes(5))
    engine = Engine(s.engine.pack, erased=dict(s.engine.erased), clock=s.engine.clock)
    engine.advance(s.engine.clock + days(8))
    assert engine.erased == {}
