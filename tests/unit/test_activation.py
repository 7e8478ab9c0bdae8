"""Activation policies at their boundaries, in event time (docs/activation.md), with the default
pack: SMS cart recovery (24 h cool-down, 2 per 7 days, quiet 21:00-09:00), push for cart
abandoners (quiet 22:00-08:00), and the recovery priority group."""

from __future__ import annotations

import pytest

from streams.engine import Engine
from streams.model.activations import Activation
from streams.model.clock import format_instant
from tests.unit.scenario import START, days, default_pack, event, hours, minutes, seconds

pytestmark = pytest.mark.unit


class Shopper:
    """One customer through a fresh engine, collecting their activations."""

    def __init__(self, customer: str = "c1", *, sms: bool = True, push: bool = False,
                 timezone: str | None = None) -> None:
        self.engine = Engine(default_pack())
        self.customer = customer
        self.out: list[Activation] = []
        traits = {"timezone": timezone} if timezone else {}
        self.send(event("profile_updated", 0, customer, traits=traits))
        self.consent(0, sms=sms, push=push)

    def send(self, raw: bytes) -> None:
        result = self.engine.process_bytes(raw)
        assert isinstance(result, list), result
        self.out += self.engine.take_activations()

    def consent(self, at: int, **channels: bool) -> None:
        self.send(event("consent_updated", at, self.customer, **channels))

    def abandon(self, at: int) -> None:
        """A cart at ``at``: the customer is a cart abandoner 30 minutes later."""
        self.send(event("add_to_cart", at, self.customer, sku="A", price=10.0))

    def buy(self, at: int) -> None:
        self.send(event("order_completed", at, self.customer, total=10.0, order_id=f"o{at}"))

    def until(self, at: int) -> list[Activation]:
        self.engine.finish(START + at)
        self.out += self.engine.take_activations()
        return self.out

    def sms(self) -> list[tuple[str, str, str]]:
        return [(a.action, a.at, a.send_at) for a in self.out if a.channel == "sms"]


def iso(offset: int) -> str:
    return format_instant(START + offset)


def cart_cycle(shopper: Shopper, at: int) -> None:
    """Abandoned at ``at`` (a member 30 minutes later), bought an hour later."""
    shopper.abandon(at)
    shopper.buy(at + hours(1))


def test_the_cool_down_lets_a_re_entry_through_at_exactly_its_length_and_not_a_second_before() -> None:
    exact, early = Shopper(), Shopper()
    for shopper, second in ((exact, hours(10)), (early, hours(10) - seconds(1))):
        cart_cycle(shopper, hours(10))
        cart_cycle(shopper, days(1) + second)
        shopper.until(days(2))
    assert [a for a, *_ in exact.sms()] == ["send", "send"]
    assert exact.sms()[1][1] == iso(days(1) + hours(10) + minutes(30))
    assert [a for a, *_ in early.sms()] == ["send"]
    assert early.engine.stats.activations["cooldown", "sms_cart_recovery", "sms"] == 1


def test_the_cap_counts_the_sends_of_the_last_period_up_to_but_excluding_its_start() -> None:
    shopper = Shopper()
    for day in (0, 1, 2, 7):
        cart_cycle(shopper, days(day) + hours(10))
    shopper.until(days(8))
    sent = [at for action, at, _ in shopper.sms() if action == "send"]
    # Day 2 is the third in 7 days; on day 7, day 0's text no longer counts.
    assert sent == [iso(days(d) + hours(10) + minutes(30)) for d in (0, 1, 7)]
    assert shopper.engine.stats.activations["cap", "sms_cart_recovery", "sms"] == 1


def test_one_text_per_cart_however_often_the_customer_comes_back_to_it() -> None:
    shopper = Shopper()
    shopper.abandon(hours(10))  # texted at 10:30
    shopper.abandon(days(2) + hours(10))  # the same cart, touched again two days later
    shopper.send(event("remove_from_cart", days(4) + hours(10), "c1", sku="A", quantity=1))  # one A left
    shopper.send(event("add_to_cart", days(4) + hours(11), "c1", sku="B", price=5.0))  # and a B
    shopper.buy(days(5))
    shopper.abandon(days(6) + hours(10))  # a new cart after the order
    shopper.until(days(7))
    assert [at for _, at, _ in shopper.sms()] == [iso(hours(10) + minutes(30)), iso(days(6) + hours(10) + minutes(30))]
    # Entered again on day 2, on day 4 after the removal and after the B: three texts saved.
    assert shopper.engine.stats.activations["once_per", "sms_cart_recovery", "sms"] == 3


def test_a_text_cancelled_before_it_went_counts_for_no_policy() -> None:
    shopper = Shopper()
    shopper.abandon(hours(21) + minutes(30))  # a member at 22:00, held until 09:00
    shopper.abandon(hours(23))  # back at the cart before 09:00: the held text is cancelled
    shopper.until(days(1) + hours(10))
    # Entered again at 23:30 with the same cart, within the 24 h cool-down of the first: yet
    # the first never reached the customer, so this one is held for 09:00 in its place.
    assert shopper.sms() == [("send", iso(hours(22)), iso(days(1) + hours(9))),
                             ("cancel", iso(hours(23)), iso(days(1) + hours(9))),
                             ("send", iso(hours(23) + minutes(30)), iso(days(1) + hours(9)))]


def test_quiet_hours_hold_the_message_until_they_end_across_midnight_and_in_the_customers_zone() -> None:
    utc = Shopper()
    utc.abandon(hours(21) + minutes(30))  # a member at 22:00 UTC: held until 09:00 the next day
    utc.until(days(1))
    assert utc.sms() == [("send", iso(hours(22)), iso(days(1) + hours(9)))]
    assert utc.engine.stats.activations["held", "sms_cart_recovery", "sms"] == 1

    morning = Shopper()
    morning.abandon(hours(8) + minutes(29))  # 08:59: held one minute
    morning.until(days(1))
    assert morning.sms() == [("send", iso(hours(8) + minutes(59)), iso(hours(9)))]

    new_york = Shopper(timezone="America/New_York")  # UTC-5 on 1 March
    new_york.abandon(hours(2))  # 02:30 UTC is 21:30 the evening before in New York
    new_york.abandon(hours(23))  # 23:30 UTC is 18:30 there: no hold
    new_york.until(days(1))
    assert new_york.sms()[0] == ("send", iso(hours(2) + minutes(30)), iso(hours(14)))


def test_a_higher_segment_entered_later_wins_and_cancels_the_lower_one_still_held() -> None:
    shopper = Shopper(sms=False, push=True)
    shopper.abandon(hours(22) + minutes(30))  # cart_abandoner at 23:00: push held until 08:00
    shopper.consent(hours(23) + minutes(10), sms=True)  # now an SMS cart recovery member
    out = shopper.until(days(1) + hours(10))
    push = [(a.action, a.segment, a.reason) for a in out if a.channel == "push"]
    assert push[0][:2] == ("send", "cart_abandoner")
    assert push[1] == ("cancel", "cart_abandoner", {"cancelled": "sms_cart_recovery has priority"})
    assert shopper.sms() == [("send", iso(hours(23) + minutes(10)), iso(days(1) + hours(9)))]


def test_the_lower_segment_entered_with_the_higher_one_is_suppressed_by_priority() -> None:
    shopper = Shopper(sms=True, push=True)
    shopper.abandon(hours(10))
    out = shopper.until(hours(11))
    assert [(a.channel, a.segment) for a in out] == [("sms", "sms_cart_recovery")]
    assert shopper.engine.stats.activations["priority", "cart_abandoner", "push"] == 1


def test_consent_withdrawn_between_entry_and_send_cancels_the_held_message() -> None:
    shopper = Shopper()
    shopper.abandon(hours(21) + minutes(30))  # held until 09:00
    shopper.consent(hours(23), sms=False)
    out = shopper.until(days(1) + hours(10))
    sms = [a for a in out if a.channel == "sms"]
    assert [a.action for a in sms] == ["send", "cancel"]
    assert sms[0].activation_id == sms[1].activation_id
    assert sms[1].at == iso(hours(23)) and sms[1].send_at == iso(days(1) + hours(9))


def test_no_consent_no_activation_and_the_suppression_is_counted() -> None:
    shopper = Shopper(sms=False, push=False)
    shopper.abandon(hours(10))
    assert shopper.until(hours(11)) == []
    assert shopper.engine.stats.activations["consent", "cart_abandoner", "push"] == 1


def test_a_membership_is_a_record_on_entry_and_a_tombstone_on_exit() -> None:
    from streams.model import memberships
    from streams.model.changes import Consent, make

    change = make("c1", "cart_abandoner", 1, START, {"cart_items": 1}, Consent(), 1, 0, "1")
    key, value = memberships.record(change)
    assert key == b'["c1","cart_abandoner"]'
    assert value is not None and memberships.decode(value).since == change.at
    gone = make("c1", "cart_abandoner", 2, START + 1, {}, Consent(), 1, 0, "1")
    assert memberships.record(gone) == (key, None)


def test_cluster_sizes_count_the_memberships_topic_as_it_is_written() -> None:
    from streams.live.membership_sizes import ClusterSizes
    from streams.live.settings import WorkerSettings
    from streams.model import memberships
    from streams.model.changes import Consent, make

    sizes = ClusterSizes(WorkerSettings(partitions=1))
    records = [memberships.record(make(c, s, n, START, {}, Consent(), 1, 0, "1"))
               for c, s, n in [("c1", "a", 1), ("c2", "a", 1), ("c1", "b", 1), ("c1", "a", 3), ("c2", "a", 2)]]
    for key, value in records:
        sizes.apply(key, value)
    assert sizes.current() == {"a": 1, "b": 1}  # c1 entered a again: one membership, not two
    sizes.apply(b"not a key", b"{}")
    sizes.apply(b'["c3"]', b"{}")
    assert sizes.current() == {"a": 1, "b": 1}


def test_the_backtest_counts_what_each_policy_saved_and_the_re_activations() -> None:
    from streams.offline.backtest import Activations

    report = Activations()
    shopper = Shopper()
    for day in (0, 1, 2, 7):
        cart_cycle(shopper, days(day) + hours(10))
    for activation in shopper.until(days(8)):
        report.add(activation)
    report.counts.update(shopper.engine.stats.activations)
    assert report.sent(("sms", "sms_cart_recovery")) == 3
    # Days 0, 1 and 7 went out (the cap held back day 2): the second and third each came
    # within 7 days of the one before; the one customer had more than one.
    assert report.again(("sms", "sms_cart_recovery")) == (2 / 3, 1.0)
    table = report.table()
    assert "sms_cart_recovery" in table and "cap" in table
