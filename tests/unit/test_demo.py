"""The demo view's pure parts: summing up a list of change dicts, and the text it shows."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from streams.tools.demo_tally import KAFKA_TS, LATEST, Tally, summarize
from streams.tools.demo_view import SNAPSHOT, Screen, decode, format_reason, render

NOW = 1_800_000_000.0
"""The view's wall clock in these tests (epoch seconds)."""


def change(customer: str, segment: str, kind: str, at: str, **reason: Any) -> dict[str, Any]:
    """A change dict as on the topic (docs/contract.md, Output)."""
    return {"change_id": f"{customer}-{segment}-{at}-{kind}", "customer_id": customer,
            "segment": segment, "change": kind, "at": at, "reason": reason,
            "consent": {"email": True, "sms": None, "push": False}, "rule_version": 1}


def at(seconds_before_now: float) -> str:
    """``NOW`` less so many seconds, as a change's ``at``."""
    return datetime.fromtimestamp(NOW - seconds_before_now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_members_are_entered_minus_exited_per_segment() -> None:
    changes = [
        change("c1", "cart_abandoner", "entered", "2026-01-01T00:30:00Z"),
        change("c2", "cart_abandoner", "entered", "2026-01-01T00:31:00Z"),
        change("c1", "cart_abandoner", "exited", "2026-01-01T00:40:00Z"),
        change("c1", "first_time_buyer", "entered", "2026-01-01T00:40:00Z"),
        change("c3", "new_visitor", "entered", "2026-01-01T00:05:00Z"),
        change("c3", "new_visitor", "exited", "2026-01-02T00:05:00Z"),
    ]
    summary = summarize(changes, NOW)
    assert list(summary.segments) == ["cart_abandoner", "first_time_buyer", "new_visitor"]
    assert {name: (c.members, c.entered, c.exited) for name, c in summary.segments.items()} == {
        "cart_abandoner": (1, 2, 1),
        "first_time_buyer": (1, 1, 0),
        "new_visitor": (0, 1, 1),
    }
    assert (summary.total.members, summary.total.entered, summary.total.exited) == (2, 4, 2)
    assert summary.changes == 6
    assert summary.skipped == 0
    assert summary.last_at == "2026-01-02T00:05:00Z"


def test_while_history_is_read_per_minute_counts_the_latest_minute_of_event_time() -> None:
    changes = [
        change("c1", "cart_abandoner", "entered", "2026-01-01T00:30:00Z"),
        change("c2", "cart_abandoner", "entered", "2026-01-01T00:31:00Z"),  # exactly a minute before: out
        change("c3", "cart_abandoner", "entered", "2026-01-01T00:31:01Z"),
        change("c1", "cart_abandoner", "exited", "2026-01-01T00:31:30Z"),
        change("c4", "cart_abandoner", "entered", "2026-01-01T00:32:00Z"),  # the latest event time
    ]
    summary = summarize(changes, NOW)
    counts = summary.segments["cart_abandoner"]
    assert (counts.entered, counts.exited) == (4, 1)
    assert (counts.entered_last_minute, counts.exited_last_minute) == (2, 1)
    assert summary.live_since is None
    assert summary.status.startswith("reading history: event time ")


def test_once_caught_up_per_minute_is_the_last_minute_of_the_wall_clock_and_it_says_since_when() -> None:
    tally = Tally()
    for seconds_ago in (3000, 100, 30, 10):
        tally.add(change(f"c{seconds_ago}", "new_visitor", "entered", at(seconds_ago)))
    first = tally.summary(NOW)
    assert first.live_since == NOW and first.status.startswith("live: caught up with history at ")
    assert first.segments["new_visitor"].entered_last_minute == 2
    assert tally.summary(NOW + 35).segments["new_visitor"].entered_last_minute == 1
    later = tally.summary(NOW + 120)  # a quiet minute is a quiet minute
    assert later.segments["new_visitor"].entered_last_minute == 0
    assert later.segments["new_visitor"].entered == 4  # totals never decay
    assert later.live_since == NOW
    assert not tally._recent  # nothing outside the window is kept


def test_latest_changes_are_the_newest_by_at_and_capped() -> None:
    changes = [change(f"c{i}", "new_visitor", "entered", f"2026-01-01T00:{i:02d}:00Z") for i in range(25)]
    summary = summarize(list(reversed(changes)), NOW)
    assert len(summary.latest) == LATEST
    assert [c["customer_id"] for c in summary.latest] == [f"c{i}" for i in range(24, 14, -1)]
    assert [c["customer_id"] for c in summarize(changes, NOW, latest=3).latest] == ["c24", "c23", "c22"]


def test_latest_is_by_event_time_whatever_the_partitions_order() -> None:
    """A backfill interleaves partitions at different event times: the list is by ``at``."""
    changes = [change("a", "s", "entered", "2026-01-05T00:00:00Z"),
               change("b", "s", "entered", "2026-01-01T00:00:00Z"),
               change("c", "s", "exited", "2026-01-05T00:00:00Z")]
    summary = summarize(changes, NOW)
    assert [c["customer_id"] for c in summary.latest] == ["c", "a", "b"]
    assert summary.last_at == "2026-01-05T00:00:00Z"


@pytest.mark.parametrize("bad", [
    {},
    {"segment": "s", "change": "entered"},  # no at
    {"segment": "s", "change": "joined", "at": "2026-01-01T00:00:00Z"},
    {"segment": 3, "change": "entered", "at": "2026-01-01T00:00:00Z"},
])
def test_records_that_are_not_changes_are_skipped_and_counted(bad: dict[str, Any]) -> None:
    summary = summarize([bad, change("c1", "s", "entered", "2026-01-01T00:00:00Z")], NOW)
    assert (summary.changes, summary.skipped) == (1, 1)
    assert summary.segments["s"].members == 1
    assert len(summary.latest) == 1


def test_an_empty_stream() -> None:
    summary = summarize([], NOW)
    assert (summary.changes, summary.skipped, summary.segments, summary.latest, summary.last_at) == (
        0, 0, {}, [], None)
    assert "(no segment changes yet)" in render(summary)


def test_a_change_produced_close_to_its_at_means_the_history_is_read() -> None:
    tally = Tally()
    # Produced an hour ago, about a moment an hour before that: history is still being read.
    tally.add(decode(orjson.dumps(change("c1", "s", "entered", at(7200))), int((NOW - 3600) * 1000)))
    assert tally.summary(NOW).status == "reading history: event time 1h 0m behind the wall clock"
    # Produced a second after its at, however long ago the last change was: live.
    tally.add(decode(orjson.dumps(change("c2", "s", "entered", at(600))), int((NOW - 599) * 1000)))
    assert tally.summary(NOW).live_since == NOW


def test_decode_reads_json_objects_only() -> None:
    value = orjson.dumps(change("c1", "s", "entered", "2026-01-01T00:00:00Z"))
    assert decode(value)["customer_id"] == "c1"
    assert decode(value, 1_700_000_000_123)[KAFKA_TS] == 1_700_000_000_123
    assert KAFKA_TS not in decode(value, -1)  # Kafka's "no timestamp"
    assert decode(b"\xffnot json") == {}
    assert decode(b"[1, 2]") == {}
    assert decode(None) == {}


def test_format_reason() -> None:
    assert format_reason({"cart_items": 2, "last_cart_activity": "2026-01-01T00:00:00Z"}) == (
        "cart_items=2 last_cart_activity=2026-01-01T00:00:00Z")
    assert format_reason({"consent.sms": True, "window": [1, 2]}) == "consent.sms=true window=[1,2]"
    assert format_reason({}) == "-"  # erasure: an exit with an empty reason
    assert format_reason(None) == "-"


def test_render_shows_sizes_rates_and_the_latest_changes_within_the_width() -> None:
    changes = [
        change("cust-1", "cart_abandoner", "entered", "2026-01-01T00:30:00Z",
               cart_items=3, last_cart_activity="2026-01-01T00:00:00Z"),
        change("cust-2", "frequent_cart_abandoner", "entered", "2026-01-01T00:34:30Z", note="x" * 300),
        change("cust-1", "cart_abandoner", "exited", "2026-01-01T00:35:00Z", cart_items=0),
    ]
    text = render(summarize(changes, NOW), width=90, title="demo run-1", notes=["worker log: var/demo/worker.log"])
    lines = text.splitlines()
    assert lines[0] == "demo run-1 | 3 changes | event time up to 2026-01-01T00:35:00Z"
    assert lines[1].startswith("reading history: event time ")
    assert lines[2] == "worker log: var/demo/worker.log"
    assert all(len(line) <= 90 for line in lines)
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.split()[:1] and
            line.split()[0] in ("cart_abandoner", "frequent_cart_abandoner", "total") and
            len(line.split()) == 6}
    assert rows == {
        "cart_abandoner": ["0", "1", "1", "0", "1"],  # the entry is 5 minutes before the latest
        "frequent_cart_abandoner": ["1", "1", "0", "1", "0"],
        "total": ["1", "2", "1", "1", "1"],
    }
    latest = lines[lines.index("latest changes (newest first)") + 2:]
    assert latest[0].split()[:4] == ["2026-01-01T00:35:00Z", "cust-1", "cart_abandoner", "exited"]
    assert latest[0].endswith("cart_items=0")
    assert latest[1].endswith("...")  # a long reason is cut at the width


def test_plain_screen_prints_a_block_when_something_changed_and_a_final_one() -> None:
    out = io.StringIO()
    screen = Screen(out, tty=False)
    empty = summarize([], NOW)
    some = summarize([change("c1", "s", "entered", "2026-01-01T00:00:00Z")], NOW)
    screen.show(empty, 0.0)
    screen.show(empty, 1.0)  # nothing new: no block
    screen.show(some, 2.0)
    screen.show(some, 3.0, final=True)
    blocks = out.getvalue().split(SNAPSHOT)[1:]
    assert [block.split("===")[0].strip() for block in blocks] == ["0s", "2s", "final"]
    assert "(no segment changes yet)" in blocks[0] and "1 changes" in blocks[1]
    assert "\x1b" not in out.getvalue()


def test_terminal_screen_draws_tables_with_rich() -> None:
    out = io.StringIO()
    screen = Screen(out, tty=True)
    screen.start()
    screen.show(summarize([change("cust-7", "cart_abandoner", "entered", "2026-01-01T00:00:00Z")], NOW), 0.0,
                title="demo")
    screen.close()
    text = out.getvalue()
    assert "segments (per minute: the latest minute of event time)" in text
    assert "cart_abandoner" in text and "cust-7" in text
    assert SNAPSHOT not in text
