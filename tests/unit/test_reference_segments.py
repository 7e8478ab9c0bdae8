"""Every boundary of the three reference segments of the reference segments in rules/, to the microsecond."""

from __future__ import annotations

from scenario import Scenario, days, hours, iso, minutes, seconds

CART = "cart_abandoner"
LAPSED = "lapsed_high_value"
LEAD = "high_intent_lead"


# --- cart_abandoner --------------------------------------------------------------------------


def test_cart_abandoner_enters_exactly_30_minutes_after_the_last_cart_activity() -> None:
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A", price=10)
    s.advance(minutes(30) - 1)
    assert s.transitions("c1", CART) == []
    s.advance(minutes(30))
    assert s.transitions("c1", CART) == [("entered", iso(minutes(30)))]


def test_cart_abandoner_entry_is_stamped_with_its_deadline_however_late_the_clock_notices() -> None:
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A")
    s.page_view("other", hours(5))  # another customer moves the clock far past the deadline
    assert s.transitions("c1", CART) == [("entered", iso(minutes(30)))]


def test_new_cart_activity_restarts_the_30_minutes_and_exits() -> None:
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A")
    s.add_to_cart("c1", minutes(20), sku="B")
    s.advance(minutes(49))
    assert s.transitions("c1", CART) == []
    s.advance(minutes(50))
    assert s.transitions("c1", CART) == [("entered", iso(minutes(50)))]
    s.checkout_started("c1", minutes(60))
    assert s.transitions("c1", CART)[-1] == ("exited", iso(minutes(60)))
    s.advance(minutes(90))
    assert s.transitions("c1", CART)[-1] == ("entered", iso(minutes(90)))


def test_cart_activity_exactly_at_the_deadline_applies_before_the_deadline_fires() -> None:
    # docs/contract.md, Time: deadlines *earlier* than the event fire first; one at the same instant does not.
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A")
    s.add_to_cart("c1", minutes(30), sku="B")
    s.advance(minutes(59))
    assert s.transitions("c1", CART) == []
    s.advance(minutes(60))
    assert s.transitions("c1", CART) == [("entered", iso(minutes(60)))]


def test_order_exits_cart_abandoner_and_empties_the_cart() -> None:
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A", price=10, quantity=2)
    s.advance(minutes(45))
    s.order_completed("c1", minutes(50), total=20)
    assert s.transitions("c1", CART) == [("entered", iso(minutes(30))), ("exited", iso(minutes(50)))]
    assert s.engine.states["c1"].cart == {}
    s.advance(days(1))
    assert len(s.transitions("c1", CART)) == 2


def test_emptying_the_cart_exits_and_partial_removal_does_not() -> None:
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A", quantity=3)
    s.advance(minutes(30))
    s.remove_from_cart("c1", minutes(40), sku="A", quantity=1)  # still 2 left: activity restarts
    assert s.transitions("c1", CART)[-1] == ("exited", iso(minutes(40)))
    s.advance(minutes(70))
    assert s.transitions("c1", CART)[-1] == ("entered", iso(minutes(70)))
    s.remove_from_cart("c1", minutes(80), sku="A")  # no quantity: all of that sku
    assert s.transitions("c1", CART)[-1] == ("exited", iso(minutes(80)))
    s.advance(days(1))
    assert s.transitions("c1", CART)[-1] == ("exited", iso(minutes(80)))


def test_removing_a_sku_not_in_the_cart_changes_nothing_but_the_activity_time() -> None:
    s = Scenario()
    s.remove_from_cart("c1", 0, sku="ghost")
    s.advance(hours(2))
    assert s.transitions("c1", CART) == []


# --- lapsed_high_value -----------------------------------------------------------------------


def test_lapsed_high_value_enters_exactly_90_days_after_the_last_order() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=300)
    s.order_completed("c1", days(10), total=250)
    s.advance(days(100) - 1)
    assert s.transitions("c1", LAPSED) == []
    s.advance(days(100))
    assert s.transitions("c1", LAPSED) == [("entered", iso(days(100)))]
    [reason] = [c.reason for c in s.log if c.segment == LAPSED]
    assert reason == {"last_order_at": iso(days(10)), "lifetime_spend": 550.0}


def test_lapsed_high_value_needs_spend_of_500() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=499.99)
    s.advance(days(365))
    assert s.transitions("c1", LAPSED) == []


def test_a_new_order_exits_lapsed_and_restarts_the_90_days() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=600)
    s.advance(days(95))
    s.order_completed("c1", days(95), total=10)
    s.advance(days(185) - 1)
    assert s.transitions("c1", LAPSED) == [("entered", iso(days(90))), ("exited", iso(days(95)))]
    s.advance(days(185))
    assert s.transitions("c1", LAPSED)[-1] == ("entered", iso(days(185)))


def test_a_refund_below_500_exits_and_one_that_keeps_500_does_not() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=700)
    s.advance(days(91))
    s.order_refunded("c1", days(92), amount=200)  # 500 left: still a member
    assert s.transitions("c1", LAPSED) == [("entered", iso(days(90)))]
    s.order_refunded("c1", days(93), amount=0.01)
    assert s.transitions("c1", LAPSED) == [("entered", iso(days(90))), ("exited", iso(days(93)))]


def test_a_refund_before_the_deadline_prevents_entry() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=600)
    s.order_refunded("c1", days(5), amount=150)
    s.advance(days(200))
    assert s.transitions("c1", LAPSED) == []


# --- high_intent_lead ------------------------------------------------------------------------


def _pricing(s: Scenario, customer: str, at: int) -> None:
    s.page_view(customer, at, page_type="pricing")


def test_high_intent_lead_enters_on_the_third_pricing_view_in_7_days() -> None:
    s = Scenario()
    _pricing(s, "c1", 0)
    _pricing(s, "c1", hours(1))
    s.page_view("c1", hours(2), page_type="product")
    assert s.transitions("c1", LEAD) == []
    _pricing(s, "c1", days(6))
    assert s.transitions("c1", LEAD) == [("entered", iso(days(6)))]


def test_high_intent_lead_exits_exactly_when_the_oldest_counted_view_leaves_the_window() -> None:
    s = Scenario()
    _pricing(s, "c1", 0)
    _pricing(s, "c1", hours(1))
    _pricing(s, "c1", hours(2) + seconds(1))
    s.advance(days(7) - 1)
    assert s.transitions("c1", LEAD) == [("entered", iso(hours(2) + seconds(1)))]
    s.advance(days(7))  # the view at 0 stops counting at exactly 0 + 7d
    assert s.transitions("c1", LEAD)[-1] == ("exited", iso(days(7)))


def test_views_spread_over_more_than_7_days_never_make_a_lead() -> None:
    s = Scenario()
    _pricing(s, "c1", 0)
    _pricing(s, "c1", days(3))
    _pricing(s, "c1", days(7))  # the first has just stopped counting
    assert s.transitions("c1", LEAD) == []
    _pricing(s, "c1", days(7) + 1)
    assert s.transitions("c1", LEAD) == [("entered", iso(days(7) + 1))]


def test_a_quote_or_demo_request_makes_a_lead_for_30_days() -> None:
    s = Scenario()
    s.quote_request("c1", 0)
    assert s.transitions("c1", LEAD) == [("entered", iso(0))]
    s.advance(days(30) - 1)
    assert len(s.transitions("c1", LEAD)) == 1
    s.advance(days(30))
    assert s.transitions("c1", LEAD)[-1] == ("exited", iso(days(30)))
    s.demo_request("c1", days(40))
    assert s.transitions("c1", LEAD)[-1] == ("entered", iso(days(40)))


def test_the_first_order_exits_a_lead_and_no_later_signal_brings_it_back() -> None:
    s = Scenario()
    s.demo_request("c1", 0)
    s.order_completed("c1", days(1), total=50)
    assert s.transitions("c1", LEAD) == [("entered", iso(0)), ("exited", iso(days(1)))]
    s.quote_request("c1", days(2))
    for k in range(3):
        _pricing(s, "c1", days(3) + k)
    s.advance(days(60))
    assert len(s.transitions("c1", LEAD)) == 2


# --- across segments: alternation, erasure, lateness, duplicates -------------------------------


def test_erasure_exits_every_segment_with_an_empty_reason_and_forgets_the_customer() -> None:
    s = Scenario()
    s.consent_updated("c1", 0, sms=True)
    s.order_completed("c1", 0, total=800)
    s.add_to_cart("c1", minutes(1), sku="A")
    s.advance(days(100))
    assert set(s.members("c1")) >= {CART, LAPSED}
    before = set(s.members("c1"))
    s.customer_erased("c1", days(101))
    exits = [c for c in s.log if c.at == iso(days(101))]
    assert {c.segment for c in exits} == before
    assert all(c.change == "exited" and c.reason == {} for c in exits)
    assert "c1" not in s.engine.states
    assert s.engine.timers.get("c1") is None
    s.advance(days(400))
    assert [c for c in s.log if c.customer_id == "c1" and c.at > iso(days(101))] == []


def test_erasure_of_an_unknown_customer_is_harmless() -> None:
    s = Scenario()
    assert s.customer_erased("nobody", 0) == []
    assert s.bad == []


def test_a_late_event_counts_at_its_own_time_and_its_change_is_stamped_with_the_customers_latest_time() -> None:
    s = Scenario()
    _pricing(s, "c1", hours(10))
    _pricing(s, "c1", hours(11))
    _pricing(s, "c1", hours(9))  # late, but inside the window: counts
    assert s.transitions("c1", LEAD) == [("entered", iso(hours(11)))]
    # ... and it expires at its own ts + 7d, which is the earliest of the three
    s.advance(days(7) + hours(9))
    assert s.transitions("c1", LEAD)[-1] == ("exited", iso(days(7) + hours(9)))


def test_a_late_cart_event_does_not_move_last_cart_activity_back() -> None:
    s = Scenario()
    s.add_to_cart("c1", minutes(10), sku="A")
    s.add_to_cart("c1", 0, sku="B")  # late
    s.advance(minutes(39))
    assert s.transitions("c1", CART) == []
    s.advance(minutes(40))
    assert s.transitions("c1", CART) == [("entered", iso(minutes(40)))]


def test_an_event_beyond_the_allowed_lateness_is_a_bad_event_with_that_reason() -> None:
    s = Scenario()
    s.page_view("c1", days(10))
    s.page_view("c2", days(3) - 1)  # more than 7 days behind the clock
    assert len(s.bad) == 1
    assert s.bad[0].reason.startswith("late:")
    assert "allowed lateness is 1w" in s.bad[0].reason
    s.page_view("c2", days(3))  # exactly 7 days behind: still allowed
    assert len(s.bad) == 1


def test_duplicate_event_ids_are_dropped() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=300, event_id="o-1")
    s.order_completed("c1", 0, total=300, event_id="o-1")
    assert s.engine.states["c1"].orders == 1
    assert s.engine.stats.duplicates == 1


def test_entered_and_exited_alternate_per_customer_and_segment() -> None:
    s = Scenario()
    for k in range(5):
        s.add_to_cart("c1", hours(k), sku="A")
        s.order_completed("c1", hours(k) + minutes(40), total=10)
    s.advance(days(2))
    kinds = [change for change, _ in s.transitions("c1", CART)]
    assert kinds == ["entered", "exited"] * 5
    ids = [c.change_id for c in s.log]
    assert len(ids) == len(set(ids))
