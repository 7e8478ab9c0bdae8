"""The practitioner segments of the default pack, each against the semantics in its file."""

from __future__ import annotations

from scenario import Scenario, days, hours, iso, minutes


def test_new_visitor_lasts_7_days_or_until_the_first_order() -> None:
    s = Scenario()
    s.page_view("c1", 0)
    s.page_view("c2", 0)
    s.order_completed("c2", days(2), total=10)
    s.advance(days(8))
    assert s.transitions("c1", "new_visitor") == [("entered", iso(0)), ("exited", iso(days(7)))]
    assert s.transitions("c2", "new_visitor") == [("entered", iso(0)), ("exited", iso(days(2)))]


def test_first_time_buyer_becomes_repeat_customer_with_the_second_order() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=10)
    s.order_completed("c1", days(3), total=10)
    assert s.transitions("c1", "first_time_buyer") == [("entered", iso(0)), ("exited", iso(days(3)))]
    assert s.transitions("c1", "repeat_customer") == [("entered", iso(days(3)))]


def test_first_time_buyer_exits_30_days_after_the_first_order() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=10)
    s.advance(days(31))
    assert s.transitions("c1", "first_time_buyer") == [("entered", iso(0)), ("exited", iso(days(30)))]


def test_high_ticket_buyer_for_365_days_after_an_order_of_1000() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=999.99)
    assert s.transitions("c1", "high_ticket_buyer") == []
    s.order_completed("c1", days(10), total=1000)
    s.advance(days(400))
    assert s.transitions("c1", "high_ticket_buyer") == [
        ("entered", iso(days(10))), ("exited", iso(days(375)))]


def test_frequent_cart_abandoner_three_checkouts_without_an_order() -> None:
    s = Scenario()
    for k in range(3):
        s.checkout_started("c1", days(k), cart_value=50)
    s.advance(days(2) + minutes(30))
    assert s.transitions("c1", "frequent_cart_abandoner") == [("entered", iso(days(2) + minutes(30)))]
    s.order_completed("c1", days(3), total=50)
    assert s.transitions("c1", "frequent_cart_abandoner")[-1] == ("exited", iso(days(3)))


def test_a_third_checkout_that_ends_in_an_order_is_not_an_abandoner() -> None:
    s = Scenario()
    for k in range(3):
        s.checkout_started("c1", days(k), cart_value=50)
    s.order_completed("c1", days(2) + minutes(5), total=50)
    s.advance(days(5))
    assert s.transitions("c1", "frequent_cart_abandoner") == []


def test_mobile_high_intent_needs_mobile_views_a_cart_and_push_consent() -> None:
    s = Scenario()
    s.consent_updated("c1", 0, push=True)
    for k in range(5):
        s.product_view("c1", minutes(k), device="mobile", sku=f"S{k}")
    assert s.transitions("c1", "mobile_high_intent") == []
    s.add_to_cart("c1", minutes(6), device="mobile", sku="S1")
    assert s.transitions("c1", "mobile_high_intent") == [("entered", iso(minutes(6)))]
    s.page_view("c1", minutes(7), device="desktop")
    assert s.transitions("c1", "mobile_high_intent")[-1] == ("exited", iso(minutes(7)))


def test_category_affinity_counts_each_category_on_its_own() -> None:
    s = Scenario()
    s.product_view("c1", 0, category="electronics")
    s.product_view("c1", hours(1), category="books")
    s.product_view("c1", hours(2), category="electronics")
    assert s.transitions("c1", "category_affinity_electronics") == []
    s.product_view("c1", hours(3), category="electronics")
    s.advance(days(31))
    assert s.transitions("c1", "category_affinity_electronics") == [
        ("entered", iso(hours(3))), ("exited", iso(days(30)))]


def test_churn_risk_60_days_after_the_last_of_two_orders() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=10)
    s.order_completed("c1", days(5), total=10)
    s.advance(days(66))
    assert s.transitions("c1", "churn_risk") == [("entered", iso(days(65)))]
