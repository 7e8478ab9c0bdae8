"""Segments of segments (docs/rules.md): ``in_segment`` and ``time_in_segment`` are judged after
the segment they read, at that segment's deadlines too; cycles and unknown names are refused
with the names given."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.cli import main
from streams.engine.switch import Switch
from streams.rules.load import check_pack, load_pack
from streams.rules.problems import Kind
from tests.unit.scenario import DEFAULT_RULES, Scenario, hours, iso, minutes

pytestmark = pytest.mark.unit


def pack_with(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, folder, ignore=shutil.ignore_patterns("tests", "templates"))
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


# "a_" sorts before "cart_abandoner": the file order alone would judge it first.
LINGERING = '''name = "a_lingering_cart"
version = 1
description = "In cart_abandoner for 2 hours or more."
when = 'time_in_segment("cart_abandoner") >= hours(2)'
'''


def test_a_segment_reading_another_is_judged_after_it_whatever_the_file_order(tmp_path: Path) -> None:
    pack = load_pack(pack_with(tmp_path, {"a_lingering_cart.toml": LINGERING}))
    names = [rule.name for rule in pack.rules]
    assert names.index("a_lingering_cart") > names.index("cart_abandoner")
    assert names.index("sms_cart_recovery") > names.index("cart_abandoner")


def test_time_in_segment_fires_at_its_own_deadline_with_no_further_event(tmp_path: Path) -> None:
    s = Scenario(load_pack(pack_with(tmp_path, {"a_lingering_cart.toml": LINGERING})))
    s.add_to_cart("c1", 0, sku="A", price=5.0)
    s.advance(hours(3))
    assert s.transitions("c1", "cart_abandoner") == [("entered", iso(minutes(30)))]
    assert s.transitions("c1", "a_lingering_cart") == [("entered", iso(minutes(30) + hours(2)))]
    s.add_to_cart("c1", hours(3), sku="B", price=5.0)  # cart activity: out of both at once
    assert s.transitions("c1", "a_lingering_cart")[-1] == ("exited", iso(hours(3)))
    assert s.members("c1") == ["new_visitor"]


def test_a_segment_reading_a_time_triggered_one_changes_at_the_same_instant() -> None:
    s = Scenario()
    s.consent_updated("c1", 0, sms=True)
    s.add_to_cart("c1", minutes(1), sku="A", price=5.0)
    s.advance(hours(1))
    entered = iso(minutes(31))
    assert s.transitions("c1", "cart_abandoner") == [("entered", entered)]
    assert s.transitions("c1", "sms_cart_recovery") == [("entered", entered)]
    [change] = [c for c in s.log if c.segment == "sms_cart_recovery"]
    # It reads what cart_abandoner read, so its reason says why, as before it was written on it.
    assert set(change.reason) == {"cart_items", "last_cart_activity", "consent.sms"}


def test_a_cycle_is_refused_with_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = pack_with(tmp_path, {
        "ping.toml": 'name = "ping"\nversion = 1\nwhen = \'in_segment("pong") or orders > 3\'\n',
        "pong.toml": 'name = "pong"\nversion = 1\nwhen = \'in_segment("ping")\'\n',
        "selfish.toml": 'name = "selfish"\nversion = 1\nwhen = \'not in_segment("selfish")\'\n',
    })
    problems = [p for p in check_pack(folder) if p.kind == Kind.CYCLE]
    assert sorted(p.message for p in problems) == [
        "segments read each other in a cycle: ping -> pong -> ping",
        "segments read each other in a cycle: selfish -> selfish",
    ]
    assert main(["rules", "validate", str(folder)]) == 1
    assert "ping.toml:3: rule 'ping'" in capsys.readouterr().err


def test_a_misspelled_segment_is_named_with_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = pack_with(tmp_path, {
        "texted.toml": 'name = "texted"\nversion = 1\nwhen = \'in_segment("cart_abandonner")\'\n',
    })
    assert main(["rules", "validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "texted.toml:3: rule 'texted': `when` column 12: unknown segment 'cart_abandonner'" in err
    assert "did you mean `cart_abandoner`?" in err


def test_a_segment_read_by_another_changed_makes_the_reader_judged_again_at_a_deployment(tmp_path: Path) -> None:
    before = load_pack(DEFAULT_RULES)
    abandoner = (DEFAULT_RULES / "cart_abandoner.toml").read_text()
    folder = pack_with(tmp_path, {"cart_abandoner.toml": abandoner.replace("version = 1", "version = 2")
                                  .replace("minutes(30)", "minutes(45)")})
    switch = Switch(before, load_pack(folder), 0, frozenset())
    judged = {rule.name: kind for rule, kind in switch.judged}
    assert judged.get("cart_abandoner") == "changed"
    assert judged.get("sms_cart_recovery") == "changed"
    # Its own condition is the same; deploying still asks for its version to be raised, and says why.
    from streams.tools.deploy import unversioned

    [problem] = unversioned(load_pack(folder), before)
    assert "segment 'sms_cart_recovery': a window, trait or segment it reads changed" in problem
