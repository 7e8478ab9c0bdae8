"""Whatever bytes arrive, decoding gives an event or a bad event with its reason, never an
exception; and a message that makes the live side fail becomes a dead letter, not a stopped
worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine import Engine
from streams.live.identity import Identity
from streams.live.metrics import Metrics
from streams.live.outbox import Outbox
from streams.live.settings import WorkerSettings
from streams.model.clock import parse_instant
from streams.model.events import (
    DEFAULT_MAX_CLOCK_SKEW,
    BadEvent,
    Envelope,
    decode,
    nesting,
)
from streams.model.limits import DEFAULT_LIMITS, Limits
from streams.offline.replay import latest_accepted
from streams.rules.load import load_pack

from scenario import DEFAULT_RULES, event

pytestmark = pytest.mark.unit

ENVELOPE = b'{"event_id":"e1","type":"profile_updated","customer_id":"c1","ts":"2026-03-01T00:00:00Z",'


def nested(depth: int) -> bytes:
    """A valid-looking profile update whose trait nests ``depth`` levels in all."""
    inner = depth - 3  # the event, its properties and its traits are three already
    return ENVELOPE + b'"properties":{"traits":{"x":' + b"[" * inner + b"]" * inner + b"}}}"


def test_deep_nesting_is_a_bad_event_with_its_reason() -> None:
    result = decode(nested(1000))
    assert isinstance(result, BadEvent)
    assert result.reason.startswith("nesting:")
    assert result.raw == nested(1000)


def test_the_nesting_limit_is_exact() -> None:
    assert isinstance(decode(nested(DEFAULT_LIMITS.max_nesting)), Envelope)
    assert isinstance(decode(nested(DEFAULT_LIMITS.max_nesting + 1)), BadEvent)
    assert isinstance(decode(nested(8), limits=Limits(max_nesting=7)), BadEvent)


def test_brackets_inside_strings_are_not_nesting() -> None:
    raw = event("search", 0, "c1", query="[[[[{{{{" * 10 + '\\"[[[')
    assert nesting(raw, 3) <= 3
    assert isinstance(decode(raw), Envelope)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_to_an_event_or_a_bad_event(raw: bytes) -> None:
    assert isinstance(decode(raw), Envelope | BadEvent)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["page_view", "add_to_cart", "order_completed", "identify",
                                     "profile_updated", "customer_erased", "nope"]))
def test_arbitrary_json_gives_a_value_never_an_exception(properties: Any, type_: str) -> None:
    body = {"event_id": "e1", "type": type_, "customer_id": "c1", "anonymous_id": "v1",
            "ts": "2026-03-01T00:00:00Z", "properties": properties}
    raw = msgspec.json.encode(body)
    assert isinstance(decode(raw), Envelope | BadEvent)
    engine = Engine(load_pack(DEFAULT_RULES))
    assert isinstance(engine.process_bytes(raw), list | BadEvent)


def live_side() -> tuple[Identity, Outbox]:
    settings = WorkerSettings(partitions=1)
    metrics = Metrics()
    outbox = Outbox(settings, metrics)
    return Identity(lambda _key: 0, outbox, metrics, monotonic=lambda: 0.0, wait=30.0), outbox


def message(value: bytes, offset: int = 7) -> Any:
    return SimpleNamespace(topic="clickstream", partition=0, offset=offset, key=b"c1", value=value)


def dead_letters(outbox: Outbox) -> list[tuple[bytes, dict[str, bytes]]]:
    return [(value, dict(headers or [])) for topic, _key, value, headers in outbox.records
            if topic == "segmenter-dead-letter"]


def test_a_message_the_engine_fails_on_is_a_dead_letter_and_the_next_one_is_applied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    identity, outbox = live_side()
    engine = Engine(load_pack(DEFAULT_RULES))
    poison, good = event("page_view", 0, "c1"), event("add_to_cart", 1, "c2", sku="A")
    real = engine.process

    def process(event: Envelope, raw: bytes = b"", **kwargs: Any) -> Any:
        if raw == poison:
            raise ValueError("broken rule input")
        return real(event, raw, **kwargs)

    monkeypatch.setattr(engine, "process", process)
    for offset, raw in enumerate((poison, good)):
        decoded = decode(raw)
        assert isinstance(decoded, Envelope)
        identity.apply_message(0, engine, message(raw, offset), decoded)
    (value, headers), = dead_letters(outbox)
    assert value == poison
    assert headers["segmenter-reason"] == b"error: ValueError: broken rule input"
    assert headers["segmenter-source-offset"] == b"0"
    assert engine.state_of("c2") is not None


def test_an_unreadable_identity_hand_off_is_a_dead_letter() -> None:
    identity, outbox = live_side()
    engine = Engine(load_pack(DEFAULT_RULES))
    identity.receive_message(0, engine, message(b"\x00not msgpack"), None)
    (value, headers), = dead_letters(outbox)
    assert value == b"\x00not msgpack"
    assert headers["segmenter-reason"] == b"unreadable identity hand-off"


def test_an_event_from_the_future_is_a_bad_event_and_moves_no_clock(tmp_path: Path) -> None:
    """A page view stamped 2099 beside ordinary carts: replay gives the carts' changes as if it
    were not there (no deadline fires early), and names it on stderr with reason future."""
    good = [event("add_to_cart", 0, "c1", sku="A", price=10.0),
            event("add_to_cart", 60_000_000, "c2", sku="B", price=10.0)]
    future = msgspec.json.encode({"event_id": "f1", "type": "page_view", "customer_id": "c3",
                                  "ts": "2099-01-01T00:00:00Z"})
    plain, mixed = tmp_path / "plain.jsonl", tmp_path / "mixed.jsonl"
    plain.write_bytes(b"\n".join(good) + b"\n")
    mixed.write_bytes(b"\n".join([good[0], future, good[1]]) + b"\n")
    out = {}
    for path in (plain, mixed):
        result = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(path)],
                                capture_output=True, check=True)
        out[path.name] = result
    assert out["mixed.jsonl"].stdout == out["plain.jsonl"].stdout
    assert b'"reason":"future: ts 2099-01-01T00:00:00Z is after' in out["mixed.jsonl"].stderr


def test_the_future_limit_follows_until_in_replay() -> None:
    until = parse_instant("2100-01-01T00:00:00Z")
    assert latest_accepted(until, wall=0.0) == until + DEFAULT_MAX_CLOCK_SKEW
    assert latest_accepted(None, wall=10.0) == 10_000_000 + DEFAULT_MAX_CLOCK_SKEW
    raw = msgspec.json.encode({"event_id": "f1", "type": "page_view", "customer_id": "c3",
                               "ts": "2099-01-01T00:00:00Z"})
    assert isinstance(decode(raw, latest=latest_accepted(until)), Envelope)
    assert isinstance(decode(raw, latest=latest_accepted(None)), BadEvent)


def test_a_merge_that_never_comes_back_holds_the_customers_events_for_handoff_wait_at_most() -> None:
    settings = WorkerSettings(partitions=2)
    metrics, now = Metrics(), [0.0]
    outbox = Outbox(settings, metrics)
    identity = Identity(lambda key: 1 if key.startswith("v") else 0, outbox, metrics,
                        monotonic=lambda: now[0], wait=30.0)
    engine = Engine(load_pack(DEFAULT_RULES))
    identify = event("identify", 0, "c1", anonymous="v1")
    decoded = decode(identify)
    assert isinstance(decoded, Envelope)
    identity.apply_message(0, engine, message(identify), decoded)  # a Link goes out; it is lost
    later = decode(event("page_view", 1, "c1"))
    assert identity.held((None, later))
    now[0] = 29.9
    assert identity.held((None, later))
    now[0] = 30.0
    assert not identity.held((None, later)), "after handoff_wait the customer's events go on"
    assert not identity.held((None, later))
    assert b"segmenter_handoffs_given_up_total 1.0" in metrics.render()


def test_a_merge_beyond_the_visitor_limit_is_a_dead_letter_of_the_identify_and_unlinks_the_visitor() -> None:
    from streams.live.handoffs import Merge, Unlink, decode_handoff
    from streams.model.limits import Limits

    identity, outbox = live_side()
    engine = Engine(load_pack(DEFAULT_RULES), limits=Limits(max_visitor_ids=0))
    identify = event("identify", 0, "c1", anonymous="v1")
    merge = Merge("v1", "c1", None, identify, 0)
    identity.receive_message(0, engine, message(b"merge-bytes"), merge)
    (value, headers), = dead_letters(outbox)
    assert value == identify, "the dead letter keeps the event the hand-off carried"
    assert headers["segmenter-reason"].startswith(b"visitor ids: ")
    handoffs = [decode_handoff(v) for topic, _k, v, _h in outbox.records if topic.endswith("-identity")]
    assert handoffs == [Unlink("v1")]


def test_the_producer_tool_routes_a_deeply_nested_message_instead_of_failing() -> None:
    from streams.tools.produce import route

    topics = ("clicks", "orders", "profiles")
    # Whether the decoder follows 1,000 levels depends on the Python version; either way the line
    # goes somewhere, for the worker to dead-letter.
    assert route(nested(1000), topics) in {("clicks", None), ("profiles", b"c1")}


def test_a_merge_whose_visitor_record_cannot_be_read_is_a_dead_letter_and_unlinks_the_visitor() -> None:
    from streams.live.handoffs import Merge, Unlink, decode_handoff

    identity, outbox = live_side()
    engine = Engine(load_pack(DEFAULT_RULES))
    identify = event("identify", 0, "c1", anonymous="v1")
    merge = Merge("v1", "c1", b"\xc1 not a record", identify, 0)
    identity.receive_message(0, engine, message(b"merge-bytes"), merge)
    (value, headers), = dead_letters(outbox)
    assert value == identify
    assert headers["segmenter-reason"].startswith(b"error: ")
    handoffs = [decode_handoff(v) for topic, _k, v, _h in outbox.records if topic.endswith("-identity")]
    assert handoffs == [Unlink("v1")]
    assert engine.state_of("c1") is None
