"""Properties of the engine over generated histories (hypothesis prints the seed of a failure).

- entered / exited alternate per customer and segment, starting with entered;
- the same input gives the same output, change_ids included;
- cutting the input anywhere, saving the state and resuming gives the output of one run;
- extra clock ticks between events (the live worker's idle ticks) change nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.engine import Engine
from streams.engine.judge import next_deadline
from streams.model.changes import SegmentChange
from streams.model.clock import parse_instant
from streams.model.events import BadEvent

from scenario import START, default_pack, event, hours, minutes

CUSTOMERS = ["c1", "c2", "c3"]


@st.composite
def histories(draw: Any) -> list[bytes]:
    """A few customers' events, mostly in time order, some late, some duplicated."""
    count = draw(st.integers(min_value=1, max_value=40))
    at = 0
    out: list[bytes] = []
    for n in range(count):
        at += draw(st.sampled_from([0, 1, minutes(1), minutes(29), minutes(30), hours(5), hours(24 * 40)]))
        late = draw(st.sampled_from([0, 0, 0, 0, minutes(10), hours(30)]))
        ts = max(at - late, 0)
        customer = draw(st.sampled_from(CUSTOMERS))
        kind = draw(st.sampled_from([
            "add_to_cart", "remove_from_cart", "checkout_started", "order_completed", "order_refunded",
            "pricing", "quote_request", "consent_updated", "customer_erased", "product_view", "anon",
            "identify",
        ]))
        eid = f"e{n}"
        if kind == "add_to_cart":
            raw = event(kind, ts, customer, event_id=eid, sku=draw(st.sampled_from("AB")),
                        quantity=draw(st.integers(1, 3)), price=20)
        elif kind == "remove_from_cart":
            raw = event(kind, ts, customer, event_id=eid, sku=draw(st.sampled_from("AB")))
        elif kind == "order_completed":
            raw = event(kind, ts, customer, event_id=eid, total=draw(st.sampled_from([10, 300, 1200])))
        elif kind == "order_refunded":
            raw = event(kind, ts, customer, event_id=eid, amount=draw(st.sampled_from([5, 400])))
        elif kind == "pricing":
            raw = event("page_view", ts, customer, event_id=eid, page_type="pricing",
                        device=draw(st.sampled_from(["mobile", "desktop"])))
        elif kind == "consent_updated":
            raw = event(kind, ts, customer, event_id=eid, sms=draw(st.booleans()), push=draw(st.booleans()))
        elif kind == "product_view":
            raw = event(kind, ts, customer, event_id=eid, category="electronics", device="mobile")
        elif kind == "anon":
            raw = event("add_to_cart", ts, None, anonymous=f"v-{customer}", event_id=eid, sku="A")
        elif kind == "identify":
            raw = event(kind, ts, customer, anonymous=f"v-{customer}", event_id=eid)
        else:
            raw = event(kind, ts, customer, event_id=eid)
        out.append(raw)
        if draw(st.integers(0, 9)) == 0:
            out.append(raw)  # a redelivery
    return out


def run(events: list[bytes], until: int | None = None) -> list[SegmentChange]:
    engine = Engine(default_pack())
    changes: list[SegmentChange] = []
    for raw in events:
        result = engine.process_bytes(raw)
        assert not isinstance(result, BadEvent) or result.reason.startswith("late:")
        if not isinstance(result, BadEvent):
            changes += result
    return changes + engine.finish(until)


def encoded(changes: list[SegmentChange]) -> list[bytes]:
    return [msgspec.json.encode(c) for c in changes]


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(histories())
def test_entered_and_exited_alternate_starting_with_entered(events: list[bytes]) -> None:
    sequences: dict[tuple[str, str], list[str]] = defaultdict(list)
    last_at: dict[str, int] = {}
    for change in run(events, until=START + hours(24 * 800)):
        sequences[change.customer_id, change.segment].append(change.change)
        at = parse_instant(change.at)
        assert at >= last_at.get(change.customer_id, 0), "a customer's changes never go back in time"
        last_at[change.customer_id] = at
        if change.reason == {} and change.change == "exited":
            last_at[change.customer_id] = 0  # erased: a later event starts a new life, at its own time
    for kinds in sequences.values():
        assert kinds == ["entered", "exited"] * (len(kinds) // 2) + ["entered"] * (len(kinds) % 2)


@FAST
@given(histories())
def test_the_same_input_gives_the_same_output(events: list[bytes]) -> None:
    first = encoded(run(events))
    assert first == encoded(run(events))
    ids = [c.change_id for c in run(events)]
    assert len(ids) == len(set(ids))


@FAST
@given(histories(), st.data())
def test_cutting_saving_and_resuming_gives_the_output_of_one_run(events: list[bytes], data: Any) -> None:
    cut = data.draw(st.integers(0, len(events)))
    whole = encoded(run(events))
    engine = Engine(default_pack())
    out: list[SegmentChange] = []
    for raw in events[:cut]:
        result = engine.process_bytes(raw)
        out += [] if isinstance(result, BadEvent) else result
    resumed = Engine.restore(default_pack(), engine.snapshot())
    for raw in events[cut:]:
        result = resumed.process_bytes(raw)
        out += [] if isinstance(result, BadEvent) else result
    out += resumed.finish()
    assert encoded(out) == whole


@FAST
@given(histories(), st.data())
def test_idle_ticks_between_events_change_nothing(events: list[bytes], data: Any) -> None:
    whole = encoded(run(events))
    engine = Engine(default_pack())
    out: list[SegmentChange] = []
    for raw in events:
        t = parse_instant(msgspec.json.decode(raw)["ts"])
        if data.draw(st.booleans()):
            out += engine.tick(t - data.draw(st.sampled_from([0, 1, minutes(5)])))
        result = engine.process_bytes(raw)
        out += [] if isinstance(result, BadEvent) else result
    out += engine.finish()
    assert encoded(out) == whole


@FAST
@given(histories())
def test_every_customer_state_round_trips_through_its_bytes(events: list[bytes]) -> None:
    from streams.model.state import decode, encode

    engine = Engine(default_pack())
    for raw in events:
        engine.process_bytes(raw)
    for state in engine.states.values():
        assert decode(encode(state)) == state


def agrees_with_its_rules(engine: Engine) -> None:
    """Every identified customer is in a segment exactly when its condition holds at the
    customer's own now, and is due back no later than the next change time alone could make
    (the compiled pack judges only the rules a step can change: the others must still hold)."""
    pack = engine.pack
    for key, state in engine.states.items():
        if not state.identified:
            continue
        for rule in pack.rules:
            assert state.is_member(rule.name) == bool(rule.condition.fn(state)), (key, rule.name)
        soonest = next_deadline(pack.timed_rules, state, None)
        if soonest is not None:
            assert state.deadline is not None and state.clock < state.deadline <= soonest, key


@FAST
@given(histories())
def test_after_every_step_memberships_are_what_the_rules_say(events: list[bytes]) -> None:
    engine = Engine(default_pack())
    for raw in events:
        engine.process_bytes(raw)
        agrees_with_its_rules(engine)
    engine.finish(START + hours(24 * 800))
    agrees_with_its_rules(engine)


def test_a_simulated_month_keeps_memberships_what_the_rules_say() -> None:
    """The same over the simulator's shoppers: categories kept per value, RFM, composed segments."""
    from streams.tools.simulate import simulate

    engine = Engine(default_pack())
    for n, raw in enumerate(simulate(300, 30, seed=5)):
        engine.process_bytes(raw)
        if n % 500 == 0:
            agrees_with_its_rules(engine)
    assert engine.stats.events > 10_000 and sum(engine.stats.changes.values()) > 1_000
    agrees_with_its_rules(engine)
    engine.finish(engine.clock + hours(24 * 400))  # type: ignore[operator]
    agrees_with_its_rules(engine)
