"""docs/contract.md, Identity, consent, erasure: identity merges, consent carried on changes and required by a rule, erasure of aliases."""

from __future__ import annotations

from scenario import Scenario, days, event, iso, minutes


def test_anonymous_visits_merge_into_the_customer_at_identify() -> None:
    s = Scenario()
    for k in range(3):
        s.page_view(None, minutes(k), anonymous="v1", page_type="pricing")
    s.add_to_cart(None, minutes(5), anonymous="v1", sku="A")
    assert s.log == []  # anonymous visitors are not segmented
    s.identify("c1", minutes(10), anonymous="v1")
    assert "v1" not in s.engine.states
    state = s.engine.states["c1"]
    assert state.cart_items == 1 and state.events == 5
    assert s.transitions("c1", "high_intent_lead") == [("entered", iso(minutes(10)))]
    # the cart activity happened at minute 5, so the abandonment clock started then
    s.advance(minutes(35))
    assert s.transitions("c1", "cart_abandoner") == [("entered", iso(minutes(35)))]


def test_anonymous_events_after_identify_go_to_the_customer() -> None:
    s = Scenario()
    s.identify("c1", 0, anonymous="v1")
    s.add_to_cart(None, minutes(1), anonymous="v1", sku="A")
    assert s.engine.states["c1"].cart_items == 1
    assert "v1" not in s.engine.states


def test_erasure_forgets_the_merged_anonymous_ids() -> None:
    s = Scenario()
    s.page_view(None, 0, anonymous="v1")
    s.identify("c1", minutes(1), anonymous="v1")
    s.customer_erased("c1", minutes(2))
    assert s.engine.states == {} and dict(s.engine.aliases) == {}
    s.page_view(None, minutes(3), anonymous="v1")  # the visitor is a stranger again
    assert set(s.engine.states) == {"v1"}
    assert s.engine.states["v1"].identified is False


def test_consent_travels_on_every_change_as_known_at_that_time() -> None:
    s = Scenario()
    s.consent_updated("c1", 0, email=True)
    s.add_to_cart("c1", minutes(1), sku="A")
    s.advance(minutes(31))
    s.consent_updated("c1", minutes(40), sms=True)  # email stays as it was
    s.order_completed("c1", minutes(50), total=5)
    cart = [c for c in s.log if c.segment == "cart_abandoner"]
    assert [(c.consent.email, c.consent.sms, c.consent.push) for c in cart] == [
        (True, None, None),
        (True, True, None),
    ]


def test_a_rule_that_requires_sms_consent_follows_the_consent() -> None:
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A")
    s.advance(minutes(30))
    assert s.transitions("c1", "sms_cart_recovery") == []
    s.consent_updated("c1", minutes(35), sms=True)
    assert s.transitions("c1", "sms_cart_recovery") == [("entered", iso(minutes(35)))]
    s.consent_updated("c1", minutes(36), sms=False)
    assert s.transitions("c1", "sms_cart_recovery")[-1] == ("exited", iso(minutes(36)))
    assert [c for c, _ in s.transitions("c1", "cart_abandoner")] == ["entered"]


def test_a_late_consent_update_may_revoke_but_never_grant() -> None:
    s = Scenario()
    s.consent_updated("c1", minutes(10), sms=False, email=True)
    s.consent_updated("c1", minutes(5), sms=True, email=False)  # late
    state = s.engine.states["c1"]
    assert (state.consent_sms, state.consent_email) == (False, False)


def test_profile_traits_merge_and_null_deletes() -> None:
    s = Scenario()
    s.profile_updated("c1", 0, traits={"country": "NO", "plan": "pro"})
    s.profile_updated("c1", days(1), traits={"plan": None, "company_size": 40})
    assert s.engine.states["c1"].traits == {"country": "NO", "company_size": 40}


def test_a_redelivered_order_after_a_long_anonymous_history_is_still_a_duplicate() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=600, event_id="o1")
    for k in range(20):
        s.page_view(None, minutes(k + 1), anonymous="v1")
    s.identify("c1", minutes(30), anonymous="v1", event_id="id1")
    s.order_completed("c1", 0, total=600, event_id="o1")
    s.identify("c1", minutes(30), anonymous="v1", event_id="id1")
    assert s.engine.states["c1"].orders == 1
    assert s.engine.stats.duplicates == 2


def test_an_old_event_arriving_after_erasure_does_not_bring_the_customer_back() -> None:
    s = Scenario()
    s.order_completed("c1", 0, total=600, event_id="o1")
    s.customer_erased("c1", days(1))
    s.order_completed("c1", 0, total=600, event_id="o1")  # a redelivery
    s.page_view("c1", days(1) - 1)  # a late event of the old life
    assert "c1" not in s.engine.states
    assert s.engine.stats.after_erasure == 2
    s.page_view("c1", days(1) + 1)  # a new life
    assert s.engine.states["c1"].events == 1


def test_a_message_redelivered_from_its_position_is_applied_once_whatever_its_id() -> None:
    from streams.model.events import decode

    s = Scenario()
    first = decode(event("order_completed", 0, "c1", total=100, event_id="x1"))
    again = decode(event("order_completed", 0, "c1", total=100, event_id="x1-retry"))
    later = decode(event("order_completed", 1, "c1", total=100, event_id="x2"))
    s.engine.process(first, position=("transactions#0", 7))  # type: ignore[arg-type]
    s.engine.process(again, position=("transactions#0", 7))  # type: ignore[arg-type]
    s.engine.process(later, position=("transactions#0", 8))  # type: ignore[arg-type]
    assert s.engine.states["c1"].orders == 2
    assert s.engine.stats.duplicates == 1
