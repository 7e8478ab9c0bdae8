"""RFM (docs/rules.md): scores at their cut points, exactly in event time; the [rfm] table
checked when the pack loads; cut points suggested as quintiles of a history."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.cli import main
from streams.model.clock import DAY, parse_duration
from streams.rules import rfm
from streams.rules.load import check_pack, load_pack
from tests.unit.scenario import DEFAULT_RULES, Scenario, days, hours, iso, seconds

pytestmark = pytest.mark.unit


def pack_with(tmp_path: Path, files: dict[str, str], rfm_table: str | None = None) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, folder, ignore=shutil.ignore_patterns("tests", "templates"))
    for name, text in files.items():
        (folder / name).write_text(text)
    if rfm_table is not None:
        pack = folder / "pack.toml"
        text = pack.read_text()
        start = text.index("[rfm]")
        end = text.index("\n\n", start)
        pack.write_text(text[:start] + rfm_table.strip() + text[end:])
    return folder


def segment(name: str, when: str) -> dict[str, str]:
    return {f"{name}.toml": f'name = "{name}"\nversion = 1\nwhen = "{when}"\n'}


def order(s: Scenario, at: int, total: float) -> None:
    s.order_completed("c1", at, order_id=f"o{at}", total=total)


def test_recency_scores_fall_exactly_at_each_cut_point(tmp_path: Path) -> None:
    # The default pack's recency cut points: 10, 23, 44 and 126 days.
    folder = pack_with(tmp_path, {**segment("r5", "rfm_r == 5"), **segment("r4", "rfm_r == 4"),
                                  **segment("r1", "rfm_r == 1")})
    s = Scenario(load_pack(folder))
    order(s, hours(12), 20.0)
    s.advance(hours(12) + days(200))
    assert s.transitions("c1", "r5") == [("entered", iso(hours(12))), ("exited", iso(hours(12) + days(10)))]
    assert s.transitions("c1", "r4") == [("entered", iso(hours(12) + days(10))),
                                         ("exited", iso(hours(12) + days(23)))]
    assert s.transitions("c1", "r1") == [("entered", iso(hours(12) + days(126)))]


def test_frequency_and_monetary_reach_a_score_at_exactly_its_cut_point(tmp_path: Path) -> None:
    table = '''[rfm]
horizon = "30d"
recency = ["1d", "2d", "3d", "4d"]
frequency = [1, 2, 3, 4]
monetary = [100, 200, 300, 400]'''
    folder = pack_with(tmp_path, {**segment("f3", "rfm_f >= 3"), **segment("m3", "rfm_m >= 3")}, table)
    s = Scenario(load_pack(folder))
    order(s, 0, 100.0)
    order(s, hours(1), 99.99)  # 199.99 spent: still under 200
    order(s, hours(2), 0.01)   # 200 exactly: monetary 3; three orders: frequency 4
    s.advance(days(40))
    assert s.transitions("c1", "f3") == [("entered", iso(hours(1))), ("exited", iso(days(30) + hours(1)))]
    # The first order ages out at exactly 30 days: 100.00 left, monetary 2.
    assert s.transitions("c1", "m3") == [("entered", iso(hours(2))), ("exited", iso(days(30)))]


def test_scores_are_null_or_lowest_before_any_order(tmp_path: Path) -> None:
    folder = pack_with(tmp_path, {**segment("unscored", "rfm_r is null and rfm_f == 1 and rfm_m == 1")})
    s = Scenario(load_pack(folder))
    s.page_view("c1", 0)
    assert s.transitions("c1", "unscored") == [("entered", iso(0))]
    order(s, seconds(5), 10.0)
    assert s.transitions("c1", "unscored")[-1] == ("exited", iso(seconds(5)))


@pytest.mark.parametrize(("table", "message"), [
    ('[rfm]\nrecency = ["1d", "2d", "3d"]\nfrequency = [1, 2, 3, 4]\nmonetary = [1, 2, 3, 4]',
     "rfm.recency: four cut points, each above the one before"),
    ('[rfm]\nrecency = ["1d", "2d", "3d", "4d"]\nfrequency = [1, 2, 2, 4]\nmonetary = [1, 2, 3, 4]',
     "rfm.frequency: four cut points, each above the one before"),
    ('[rfm]\nhorizon = "a year"\nrecency = ["1d", "2d", "3d", "4d"]\nfrequency = [1, 2, 3, 4]\nmonetary = [1, 2, 3, 4]',
     "a year"),
    ('[rfm]\nhorizon = "0d"\nrecency = ["1d", "2d", "3d", "4d"]\nfrequency = [1, 2, 3, 4]\nmonetary = [1, 2, 3, 4]',
     "rfm.horizon '0d': frequency and monetary value need a horizon above 0"),
    ('[rfm]\nrecency = ["0d", "2d", "3d", "4d"]\nfrequency = [1, 2, 3, 4]\nmonetary = [1, 2, 3, 4]',
     "rfm.recency: four cut points"),
    ('[rfm]\nrecency = ["1d", "2d", "3d", "4d"]\nfrequency = [-1, 2, 3, 4]\nmonetary = [1, 2, 3, 4]',
     "rfm.frequency: four cut points"),
    ('[rfm]\nrecency = ["1d", "2d", "3d", "4d"]\nfrequency = [1, 2, 3, 4]\nmonetary = [1, 2, 3, nan]',
     "rfm.monetary: four cut points"),
])
def test_a_bad_rfm_table_is_refused_with_what_is_wrong(tmp_path: Path, table: str, message: str) -> None:
    problems = check_pack(pack_with(tmp_path, {}, table))
    assert any(message in p.message and p.file == "pack.toml" for p in problems), problems
    # Only what is wrong: the segments reading RFM are not reported for it.
    assert all(p.file == "pack.toml" for p in problems), problems


def test_a_rule_reading_rfm_without_an_rfm_table_says_so(tmp_path: Path) -> None:
    folder = pack_with(tmp_path, {})
    text = (folder / "pack.toml").read_text()
    start = text.index("[rfm]")
    (folder / "pack.toml").write_text(text[:start] + text[text.index("\n\n", start) + 2:])
    problems = check_pack(folder)
    assert problems and all("RFM needs an [rfm] table in pack.toml" in p.message for p in problems)


def test_quintiles_give_ascending_cut_points() -> None:
    values = {"recency": [d * DAY for d in range(1, 101)], "frequency": [1] * 60 + [2] * 20 + [5] * 20,
              "monetary": [float(v) for v in range(10, 1010, 10)]}
    text = rfm.suggest(values, parse_duration("365d"))
    assert 'recency = ["21d", "41d", "61d", "81d"]' in text
    assert "frequency = [1, 2, 3, 5]" in text  # ties moved up so every score is reachable
    assert "monetary = [210, 410, 610, 810]" in text
    parsed = rfm.parse(rfm.RfmSpec(recency=["21d", "41d", "61d", "81d"], frequency=[1, 2, 3, 5],
                                   monetary=[210, 410, 610, 810]))
    assert parsed.horizon == parse_duration("365d")


def test_backtest_suggests_an_rfm_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "orders.jsonl"
    lines = [f'{{"event_id": "e{i}", "type": "order_completed", "customer_id": "c{i}", '
             f'"ts": "2026-03-{1 + i:02d}T10:00:00Z", "properties": {{"order_id": "o{i}", "total": {10 * (i + 1)}}}}}'
             for i in range(10)]
    events.write_text("\n".join(lines) + "\n")
    assert main(["backtest", str(events), "--out", str(tmp_path / "out"), "--suggest-rfm"]) == 0
    out = capsys.readouterr().out
    assert "# RFM cut points at the quintiles of 10 customers with an order" in out
    assert 'horizon = "365d"' in out and "monetary = [30, 50, 70, 90]" in out
    suggested = out[out.index("[rfm]"):]
    assert not check_pack(pack_with(tmp_path, {}, suggested)), "the suggestion loads as it is printed"
