"""The event simulator: deterministic, valid, time-ordered, and rich enough to exercise the pack."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest

from streams.engine import Engine
from streams.model.changes import encode as encode_change
from streams.model.events import BadEvent, Envelope, decode, type_of
from streams.rules.load import load_pack
from streams.rules.pack import RulePack
from streams.tools import shopping
from streams.tools.personas import personas_of
from streams.tools.simulate import (
    DUPLICATE_DELAY_S,
    PERSONA_NAMES,
    main,
    simulate,
    write_jsonl,
)

SEED = 20260101
RULES = Path(__file__).resolve().parents[2] / "rules"


@cache
def _lines(customers: int, days: float, seed: int = SEED,
           personas: tuple[str, ...] | None = None) -> tuple[bytes, ...]:
    return tuple(simulate(customers, days, seed, personas=personas))


def _events(lines: tuple[bytes, ...]) -> list[Envelope]:
    events = []
    for line in lines:
        event = decode(line)
        assert not isinstance(event, BadEvent), (event.reason, line)
        events.append(event)
    return events


@cache
def _decoded(customers: int, days: float) -> list[Envelope]:
    return _events(_lines(customers, days))


@cache
def _pack() -> RulePack:
    return load_pack(RULES)


def _replay(lines: tuple[bytes, ...]) -> tuple[Engine, list[bytes]]:
    """Every change as its JSON bytes (change ids included), and the engine for its counters."""
    engine = Engine(_pack())
    out: list[bytes] = []
    for line in lines:
        result = engine.process_bytes(line)
        if not isinstance(result, BadEvent):
            out += map(encode_change, result)
    out += map(encode_change, engine.finish())
    return engine, out


def test_same_seed_same_bytes() -> None:
    first = list(simulate(300, 10, SEED, bad_rate=0.02, duplicate_rate=0.02))
    assert first == list(simulate(300, 10, SEED, bad_rate=0.02, duplicate_rate=0.02))
    assert len(first) > 1_000


def test_different_seeds_differ() -> None:
    assert _lines(300, 10) != _lines(300, 10, SEED + 1)


def test_good_events_decode_and_are_time_ordered() -> None:
    events = _events(_lines(300, 10))
    instants = [event.instant for event in events]
    assert instants == sorted(instants)
    ids = [event.event_id for event in events]
    assert len(set(ids)) == len(ids)
    assert ids[:3] == [f"{SEED}-0", f"{SEED}-1", f"{SEED}-2"]
    assert min(instants) >= 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    assert max(instants) < 1_767_225_600_000_000 + 10 * 86_400_000_000


def test_orders_add_up_and_refunds_do_not_exceed_them() -> None:
    totals: dict[str, float] = {}
    refunds = 0
    for event in _decoded(2_000, 30):
        tag = type_of(event)
        if tag == "order_completed":
            props = event.properties  # type: ignore[attr-defined]
            assert props.items and event.customer_id is not None
            assert props.total == pytest.approx(sum(i.price * i.quantity for i in props.items), abs=0.006)
            totals[props.order_id] = props.total
        elif tag == "order_refunded":
            props = event.properties  # type: ignore[attr-defined]
            assert props.amount <= totals[props.order_id]
            refunds += 1
    assert refunds > 0
    assert max(totals.values()) >= 1_000


def test_every_persona_and_event_type_shows_up() -> None:
    events = _decoded(2_000, 30)
    active = {event.customer_id for event in events} | {
        f"cust-{event.anonymous_id.split('-')[1]}" for event in events if event.anonymous_id
    }
    by_persona = Counter(persona for cid, persona in personas_of(2_000, SEED).items() if cid in active)
    assert set(by_persona) == set(PERSONA_NAMES), by_persona
    types = Counter(type_of(event) for event in events)
    missing = {"page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
               "checkout_started", "quote_request", "demo_request", "signup", "login", "identify",
               "order_completed", "order_refunded", "profile_updated", "consent_updated"} - set(types)
    assert not missing
    assert {event.device for event in events} >= {"mobile", "desktop", "tablet"}
    assert {event.channel for event in events} >= {"organic", "paid_search", "email", "social", "direct"}


def test_anonymous_visitors_identify_and_b2b_profiles_carry_company_size() -> None:
    events = _decoded(2_000, 30)
    identifies = [e for e in events if type_of(e) == "identify"]
    assert identifies and all(e.customer_id and e.anonymous_id for e in identifies)
    first_seen_anonymous = {e.anonymous_id for e in events if e.customer_id is None}
    assert {e.anonymous_id for e in identifies} & first_seen_anonymous
    traits = [e.properties.traits for e in events if type_of(e) == "profile_updated"]  # type: ignore[attr-defined]
    assert any("company_size" in t for t in traits)
    assert all(isinstance(t["country"], str) and len(t["country"]) == 2 for t in traits if "country" in t)


def test_erasure_comes_last_in_a_life(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shopping, "ERASURE_RATE", 0.05)  # 0.1% is too rare for 300 customers
    lines = tuple(simulate(300, 30, SEED))
    events = _events(lines)
    erased = {e.customer_id: e.instant for e in events if type_of(e) == "customer_erased"}
    assert len(erased) >= 5
    for event in events:
        if event.customer_id in erased and type_of(event) != "customer_erased":
            assert event.instant < erased[event.customer_id]
    engine, _ = _replay(lines)
    assert not set(erased) & set(engine.states)


def test_bad_events_are_dead_lettered_and_leave_the_good_ones_alone() -> None:
    clean = _lines(300, 10)
    noisy = list(simulate(300, 10, SEED, bad_rate=0.05))
    decoded = [decode(line) for line in noisy]
    bad = [event for event in decoded if isinstance(event, BadEvent)]
    assert 0.02 * len(clean) < len(bad) < 0.08 * len(clean)
    reasons = " | ".join(event.reason for event in bad)
    for fragment in ("not valid JSON", "truncated", "is required for `order_completed`",
                     "Expected `datetime`", "Expected `float`", "Invalid value", "missing required"):
        assert fragment in reasons, fragment
    assert [line for line, event in zip(noisy, decoded, strict=True)
            if not isinstance(event, BadEvent)] == list(clean)


def test_duplicates_are_exact_copies_shortly_after_the_original() -> None:
    clean = _lines(300, 10)
    noisy = list(simulate(300, 10, SEED, duplicate_rate=0.05))
    assert 0.02 * len(clean) < len(noisy) - len(clean) < 0.08 * len(clean)
    seen: dict[bytes, int] = {}
    for position, line in enumerate(noisy):
        if line in seen:
            original = _events((noisy[seen[line]],))[0]
            latest = max(event.instant for event in _events(tuple(noisy[seen[line]:position])))
            assert latest - original.instant <= DUPLICATE_DELAY_S * 1_000_000
        else:
            seen[line] = position
    assert list(seen) == list(clean)


def test_noise_does_not_change_the_segment_changes() -> None:
    clean = _lines(300, 10)
    noisy = tuple(simulate(300, 10, SEED, bad_rate=0.03, duplicate_rate=0.03))
    engine, changes = _replay(noisy)
    assert changes == _replay(clean)[1]
    good = [line for line in noisy if not isinstance(decode(line), BadEvent)]
    redelivered = len(good) - len(clean)
    assert engine.stats.bad == len(noisy) - len(good)
    assert engine.stats.duplicates + engine.stats.after_erasure == redelivered


def test_a_month_of_2000_customers_exercises_the_default_pack() -> None:
    engine, _ = _replay(_lines(2_000, 30))
    segments = {segment for segment, _ in engine.stats.changes}
    expected = {"cart_abandoner", "sms_cart_recovery", "frequent_cart_abandoner", "high_intent_lead",
                "high_ticket_buyer", "mobile_high_intent", "new_visitor", "first_time_buyer",
                "repeat_customer", "category_affinity_electronics"}
    assert len(segments) >= 8
    assert expected <= segments, expected - segments
    assert engine.stats.bad == 0 and engine.stats.duplicates == 0


def test_lapsing_customers_lapse_after_ninety_days() -> None:
    engine, _ = _replay(_lines(60, 120, personas=("lapsing",)))
    assert engine.stats.changes["lapsed_high_value", "entered"] > 30
    assert engine.stats.changes["churn_risk", "entered"] > 0


def test_write_jsonl_and_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.jsonl"
    count = write_jsonl(path, customers=50, days=3, seed=SEED)
    assert path.read_bytes().splitlines() == list(_lines(50, 3))
    assert count == len(_lines(50, 3))
    out = tmp_path / "main.jsonl"
    assert main(["--customers", "50", "--days", "3", "--seed", str(SEED), "--out", str(out)]) == 0
    assert out.read_bytes() == path.read_bytes()
    assert f"{count} events" in capsys.readouterr().err
    assert main(["--customers", "5", "--bad-rate", "2", "--out", str(out)]) == 2


def test_segmenter_simulate_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main as cli_main

    out = tmp_path / "cli.jsonl"
    assert cli_main(["simulate", "--customers", "50", "--days", "3", "--seed", str(SEED), "--out", str(out)]) == 0
    assert out.read_bytes().splitlines() == list(_lines(50, 3))
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli_main(["simulate", "--help"])
    help_text = capsys.readouterr().out
    for option in ("--kafka BOOTSTRAP", "--rate EVENTS_PER_S", "--clickstream-topic", "--persona"):
        assert option in help_text


@pytest.mark.parametrize("argv", [
    ["--kafka", "127.0.0.1:1", "--out", "x.jsonl"],
    ["--rate", "100"],
    ["--kafka", "127.0.0.1:1", "--rate", "0"],
])
def test_simulate_kafka_options_that_exclude_each_other(argv: list[str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "segmenter simulate:" in capsys.readouterr().err


def test_simulate_topics_follow_flags_then_the_workers_variables() -> None:
    from streams.tools.simulate import build_parser, topics_of

    args = build_parser().parse_args(["--kafka", "k:9092", "--profiles-topic", "p-flag"])
    assert topics_of(args, {}) == ("clickstream", "transactions", "p-flag")
    env = {"SEGMENTER_CLICKSTREAM_TOPIC": "c-env", "SEGMENTER_PROFILES_TOPIC": "p-env"}
    assert topics_of(args, env) == ("c-env", "transactions", "p-flag")


def test_full_days_thins_only_older_browsing_and_keeps_every_order() -> None:
    full = _events(_lines(300, 20))
    sparse = _events(tuple(simulate(300, 20, SEED, full_days=5)))
    cutoff = datetime(2026, 1, 16, tzinfo=UTC)  # the default start, 2026-01-01, and 20 - 5 days
    browsing = {"page_view", "product_view", "search"}

    def count(events: list[Envelope], older: bool, kinds: set[str] | None) -> int:
        return sum(1 for e in events if (e.ts < cutoff) == older
                   and (kinds is None or type_of(e) in kinds))

    # Older browsing: about one in ten kept.
    assert 0.05 < count(sparse, True, browsing) / count(full, True, browsing) < 0.15
    # Orders, carts and profiles all kept, older or not; recent browsing all kept.
    others = {"order_completed", "add_to_cart", "profile_updated", "consent_updated", "identify"}
    assert count(sparse, True, others) == count(full, True, others)
    assert count(sparse, False, browsing) == count(full, False, browsing)
    assert tuple(simulate(300, 20, SEED, full_days=5)) == tuple(simulate(300, 20, SEED, full_days=5))
