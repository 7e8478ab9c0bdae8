"""``segmenter backtest``: stays, re-entries, sizes and overlap from hand-made change streams,
then the command as a user runs it on a simulated month."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.offline.backtest import NOT_DISTINCT, Backtest, Report, backtest, percentile
from streams.offline.report import chart, human_duration, table
from streams.rules.load import load_pack
from streams.tools.simulate import write_jsonl

from scenario import ROOT, START, Scenario, days, hours, minutes

SEED = 20260101


def run(*changes: tuple[str, str, str, int], segments: tuple[str, ...] = (), end: int | None = None) -> Report:
    """Changes as (customer, segment, entered|exited, offset from START)."""
    bt = Backtest(segments)
    for customer, segment, change, at in changes:
        bt.record(customer, segment, change, START + at)
    return bt.report(None if end is None else START + end)


# --- stays, re-entries, sizes ----------------------------------------------------------------


def test_stays_reentries_size_at_the_end_and_peak() -> None:
    report = run(
        ("c1", "a", "entered", 0), ("c2", "a", "entered", hours(1)), ("c1", "a", "exited", hours(2)),
        ("c3", "a", "entered", hours(3)), ("c1", "a", "entered", hours(5)), ("c1", "a", "exited", hours(6)),
        ("c3", "a", "exited", hours(7)),
        end=hours(10),
    )
    a = report.segment("a")
    assert (a.entrants, a.entries, a.reentrants, a.reentry_share) == (3, 4, 1, pytest.approx(1 / 3))
    assert a.completed == 3  # stays of 2h (c1), 1h (c1 again), 4h (c3); c2 is still inside
    assert a.median_stay == hours(2)
    assert a.p90_stay == hours(3.6)  # between 2h and 4h, 80% of the way
    assert a.inside_at_end == 1
    assert (a.peak, a.peak_at) == (3, START + hours(5))
    assert a.member_time == hours(2) + hours(9) + hours(1) + hours(4)
    assert report.sizes["a"] == [(START + t, n) for t, n in [
        (0, 1), (hours(1), 2), (hours(2), 1), (hours(3), 2), (hours(5), 3), (hours(6), 2), (hours(7), 1)]]
    assert (report.start, report.end) == (START, START + hours(10))


def test_changes_at_one_instant_count_together_for_the_peak() -> None:
    # c1 leaves as c2 arrives: the segment never holds two.
    report = run(("c1", "a", "entered", 0), ("c2", "a", "entered", hours(1)), ("c1", "a", "exited", hours(1)))
    assert report.segment("a").peak == 1
    assert report.sizes["a"] == [(START, 1), (START + hours(1), 1)]


def test_a_segment_of_the_pack_that_nobody_entered_is_still_reported() -> None:
    report = run(("c1", "a", "entered", 0), segments=("a", "never"))
    never = report.segment("never")
    assert (never.entrants, never.entries, never.peak, never.median_stay, never.reentry_share) == (0, 0, 0, None, None)
    assert [s.name for s in report.segments] == ["a", "never"]
    assert "Never entered: never." in table(report)


def test_a_change_that_breaks_the_alternation_is_ignored_and_counted() -> None:
    report = run(("c1", "a", "entered", 0), ("c1", "a", "entered", hours(1)), ("c2", "a", "exited", hours(1)),
                 ("c1", "a", "exited", hours(3)))
    a = report.segment("a")
    assert (a.entries, a.completed, a.median_stay, report.anomalies) == (1, 1, hours(3), 2)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7
    assert percentile([1, 2, 3, 4], 0.5) == 2  # 2.5 rounds to even
    assert percentile([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0.9) == 90


def test_human_durations() -> None:
    assert [human_duration(d) for d in (None, 21_000_000, minutes(30), hours(2) + minutes(5), days(3) + hours(4))] == [
        "-", "21s", "30m", "2h 05m", "3d 4h"]


# --- overlap ---------------------------------------------------------------------------------


def test_a_subset_segment_is_not_distinct_but_its_superset_is() -> None:
    # Everyone in "sub" is in "big" at the time; "big" has as much member-time again outside "sub".
    report = run(
        ("c1", "big", "entered", 0), ("c1", "sub", "entered", hours(1)), ("c1", "sub", "exited", hours(3)),
        ("c2", "big", "entered", 0), ("c2", "sub", "entered", 0),
        end=hours(4),
    )
    sub_in_big, big_in_sub = report.overlap("sub", "big"), report.overlap("big", "sub")
    assert sub_in_big is not None and big_in_sub is not None
    assert (sub_in_big.time_share, sub_in_big.customer_share, sub_in_big.not_distinct) == (1.0, 1.0, True)
    # big: c1 4h + c2 4h = 8h, of which 2h + 4h also in sub
    assert (big_in_sub.time_share, big_in_sub.customer_share, big_in_sub.not_distinct) == (0.75, 1.0, False)
    assert report.not_distinct() == [sub_in_big]
    text = table(report)
    assert "sub is 100.0% inside big" in text


def test_not_distinct_starts_at_95_percent_of_member_time() -> None:
    def inside(hours_inside: float) -> Report:
        # c1 spends 100h in a, hours_inside of them in b too; c2 keeps b from being inside a.
        return run(("c1", "a", "entered", 0), ("c1", "b", "entered", 0),
                   ("c1", "b", "exited", hours(hours_inside)), ("c1", "a", "exited", hours(100)),
                   ("c2", "b", "entered", 0), ("c2", "b", "exited", hours(100)))

    at_95, under = inside(95), inside(94.9)
    assert [(o.segment, o.other, o.time_share) for o in at_95.not_distinct()] == [("a", "b", NOT_DISTINCT)]
    a_in_b = under.overlap("a", "b")
    assert a_in_b is not None and a_in_b.time_share < NOT_DISTINCT and a_in_b.customer_share == 1.0
    assert under.not_distinct() == []
    assert "Every segment is distinct" in table(under)


def test_overlap_needs_the_same_time_not_the_same_customer() -> None:
    # c1 is in both segments, but one after the other; and an order moves c2 from "new" to
    # "buyer" at one instant, both changes stamped alike: neither is overlap.
    report = run(
        ("c1", "a", "entered", 0), ("c1", "a", "exited", hours(1)), ("c1", "b", "entered", hours(2)),
        ("c2", "new", "entered", 0), ("c2", "buyer", "entered", hours(5)), ("c2", "new", "exited", hours(5)),
        end=hours(10),
    )
    assert report.overlaps == []
    assert report.not_distinct() == []


def test_customer_share_counts_customers_ever_in_both_at_once() -> None:
    report = run(
        ("c1", "a", "entered", 0), ("c1", "b", "entered", hours(1)), ("c1", "b", "exited", hours(2)),
        ("c2", "a", "entered", 0), ("c3", "a", "entered", 0), ("c4", "a", "entered", 0),
        end=hours(10),
    )
    a_in_b = report.overlap("a", "b")
    assert a_in_b is not None
    assert a_in_b.customer_share == 0.25
    assert a_in_b.time_share == pytest.approx(1 / 40)


# --- from the engine's own changes -----------------------------------------------------------


def test_a_report_of_real_engine_changes() -> None:
    s = Scenario()
    s.add_to_cart("c1", 0, sku="A", price=10)
    s.advance(minutes(30))
    s.add_to_cart("c1", hours(1), sku="B", price=10)  # exits; enters again 30 minutes later
    s.order_completed("c1", hours(3), order_id="o1", total=20)
    s.add_to_cart("c2", hours(3), sku="A", price=10)
    s.advance(hours(4))
    report = backtest(s.log, [r.name for r in s.engine.pack.rules], end=START + hours(4))
    cart = report.segment("cart_abandoner")
    assert (cart.entrants, cart.entries, cart.reentrants, cart.completed) == (2, 3, 1, 2)
    assert (cart.median_stay, cart.p90_stay) == (minutes(30) + (minutes(90) - minutes(30)) // 2,
                                                  minutes(30) + (minutes(90) - minutes(30)) * 9 // 10)
    assert cart.inside_at_end == 1
    assert [s.name for s in report.segments] == [r.name for r in s.engine.pack.rules]


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    report = run(("c1", "a", "entered", 0), ("c2", "b", "entered", hours(1)), ("c1", "a", "exited", hours(2)),
                 segments=("a", "b", "never"), end=hours(3))
    path = tmp_path / "sizes.png"
    chart(report, path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# --- the command -----------------------------------------------------------------------------


def test_backtest_command_on_a_simulated_month(tmp_path: Path) -> None:
    history = tmp_path / "month.jsonl"
    write_jsonl(history, customers=300, days=30, seed=SEED)
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "streams.cli", "backtest", str(history), "--out", str(out)],
                            cwd=ROOT, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert (out / "backtest.txt").read_text() == text
    rows = {line.split()[0] for line in text.splitlines() if line.strip()}
    names = [rule.name for rule in load_pack(ROOT / "rules").rules]
    assert set(names) <= rows, f"segments missing from the table (seed {SEED}):\n{text}"
    assert "Overlap:" in text
    png = (out / "segment_sizes.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000


def test_backtest_of_a_missing_file_fails_with_its_name(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "streams.cli", "backtest", "/nonexistent/h.jsonl",
                             "--out", str(tmp_path)], cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert result.returncode == 2
    assert b"no such file: /nonexistent/h.jsonl" in result.stderr
