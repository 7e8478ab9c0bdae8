"""Rule files: the default pack loads; broken packs report every problem with file, rule and place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.cli import main
from streams.rules.load import check_pack, load_pack
from streams.rules.problems import Kind

from scenario import DEFAULT_RULES


def make_pack(tmp_path: Path, files: dict[str, str], *, with_default_pack_toml: bool = True) -> Path:
    if with_default_pack_toml:
        shutil.copy(DEFAULT_RULES / "pack.toml", tmp_path / "pack.toml")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_default_pack_is_valid_and_has_the_reference_segments() -> None:
    pack = load_pack(DEFAULT_RULES)
    names = {rule.name for rule in pack.rules}
    assert {"cart_abandoner", "lapsed_high_value", "high_intent_lead"} <= names
    assert len(names) >= 8
    assert all(rule.description for rule in pack.rules)


def test_validate_points_at_the_typo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_pack(tmp_path, {"abandoner.toml": (
        'name = "abandoner"\n'
        "version = 1\n"
        'when = "cart_items > 0 and now - last_cart_activty >= minutes(30)"\n'
    )})
    assert main(["rules", "validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "abandoner.toml:3: rule 'abandoner': `when` column 26: unknown field `last_cart_activty`" in err
    assert "did you mean `last_cart_activity`?" in err
    caret_line = err.splitlines()[err.splitlines().index(
        "    cart_items > 0 and now - last_cart_activty >= minutes(30)") + 1]
    assert caret_line == "    " + " " * 25 + "^"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    make_pack(tmp_path, {
        "a.toml": 'name = "a"\nversion = 1\nwhen = "windows.pricing_views_7 >= 3"\n',
        "b.toml": 'name = "b"\nversion = 1\nwhen = "orders >= days(3)"\n',
        "c.toml": 'name = "c"\nversion = 1\nwhen = "orders > 1"\nrequires_consent = "fax"\n',
        "d.toml": 'name = "d"\nverison = 1\nwhen = "orders > 1"\n',
        "e.toml": 'name = "a"\nversion = 1\nwhen = "orders > 1"\n',
        "f.toml": 'name = "f"\nversion = 1\nwhen = """orders > 1\n',
        "g.toml": 'name = "g"\nversion = 1\nwhen = "orders + 1"\n',
    })
    problems = {p.file: p for p in check_pack(tmp_path)}
    assert problems["a.toml"].kind == Kind.UNKNOWN_WINDOW
    assert "did you mean `pricing_views_7d`?" in problems["a.toml"].message
    assert problems["b.toml"].kind == Kind.TYPE_MISMATCH
    assert problems["c.toml"].kind == Kind.BAD_FILE
    assert problems["d.toml"].kind == Kind.BAD_FILE and "did you mean `version`?" in problems["d.toml"].message
    assert problems["e.toml"].kind == Kind.DUPLICATE
    assert problems["f.toml"].kind == Kind.BAD_FILE
    assert problems["g.toml"].kind == Kind.TYPE_MISMATCH
    assert len(problems) == 7


def test_a_multiline_condition_reports_the_file_line_of_the_error(tmp_path: Path) -> None:
    make_pack(tmp_path, {"lead.toml": (
        'name = "lead"\nversion = 1\n'
        "when = '''\n"
        "orders == 0\n"
        "and windows.pricing_views_7d >= \"3\"\n"
        "'''\n"
    )})
    [problem] = check_pack(tmp_path)
    assert problem.kind == Kind.TYPE_MISMATCH
    assert problem.line == 5
    assert problem.source == 'and windows.pricing_views_7d >= "3"'


def test_window_declarations_are_checked(tmp_path: Path) -> None:
    (tmp_path / "pack.toml").write_text(
        "[windows.w1]\nevents = [\"page_veiw\"]\nover = \"7d\"\n"
        "[windows.w2]\nevents = [\"page_view\"]\nover = \"7 days\"\n"
        "[windows.w3]\nevents = [\"page_view\", \"search\"]\nover = \"1d\"\nwhere = 'page_type == \"pricing\"'\n"
        "[windows.w4]\nevents = [\"order_completed\"]\nover = \"1d\"\naggregate = \"sum\"\n"
        "[windows.w5]\nevents = [\"page_view\"]\nover = \"1d\"\nwhere = 'now - ts > 1'\n"
    )
    (tmp_path / "s.toml").write_text('name = "s"\nversion = 1\nwhen = "orders > 0"\n')
    kinds = sorted(p.kind.value for p in check_pack(tmp_path))
    assert kinds == sorted([Kind.UNKNOWN_EVENT_TYPE.value, Kind.BAD_VALUE.value, Kind.UNKNOWN_FIELD.value,
                            Kind.BAD_VALUE.value, Kind.NOT_ALLOWED.value])


def test_yaml_style_surprises_cannot_happen_in_toml_literals(tmp_path: Path) -> None:
    (tmp_path / "pack.toml").write_text('[traits]\ncountry = "string"\n')
    (tmp_path / "norway.toml").write_text(
        'name = "norway"\nversion = 1\nwhen = \'traits.country == "NO"\'\n')
    (tmp_path / "wrong.toml").write_text(
        'name = "wrong"\nversion = 1\nwhen = "traits.country == false"\n')
    [problem] = check_pack(tmp_path)
    assert problem.rule == "wrong" and problem.kind == Kind.TYPE_MISMATCH


def test_validate_succeeds_on_the_default_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(DEFAULT_RULES)]) == 0
    assert "all valid" in capsys.readouterr().out


def test_once_per_names_a_field_of_the_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_pack(tmp_path, {"abandoner.toml": (
        'name = "abandoner"\n'
        "version = 1\n"
        'when = "cart_items > 0"\n'
        'once_per = "cart_start_at"\n'
    )})
    assert main(["rules", "validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "abandoner.toml:4: rule 'abandoner'" in err
    assert "once_per 'cart_start_at' is not a field of the customer's record" in err
    assert "did you mean `cart_started_at`?" in err


@pytest.mark.parametrize(("repeat", "end"), [("orders + ", "1 > 2"), ("not not ", "orders > 0")])
def test_the_deepest_rule_validate_accepts_runs_in_the_engine(tmp_path: Path, repeat: str, end: str) -> None:
    """The engine inlines a condition deeper than it is written: a rule at the nesting limit must
    run (events, deadlines) or be refused by validate, never pass and then fail every event."""
    from streams.engine import Engine
    from streams.model.events import BadEvent

    from scenario import START, event, hours

    def pack_with(n: int) -> Path:
        folder = tmp_path / str(n)
        folder.mkdir()
        when = f"({repeat * n}{end}) and now - last_seen < hours(1)"
        return make_pack(folder, {"deep.toml": f'name = "deep"\nversion = 1\nwhen = "{when}"\n'})

    deepest = next(n for n in range(300, 0, -1) if not check_pack(pack_with(n)))
    assert 60 < deepest < 300
    [problem] = check_pack(tmp_path / "300")
    assert (problem.file, problem.kind) == ("deep.toml", Kind.NOT_ALLOWED)
    assert "nested too deeply" in problem.message
    engine = Engine(load_pack(tmp_path / str(deepest)))
    result = engine.process_bytes(event("order_completed", 0, "c1", total=5))
    assert not isinstance(result, BadEvent)
    assert [(c.segment, c.change) for c in result if c.segment == "deep"] == [("deep", "entered")]
    later = engine.finish(START + hours(2))
    assert [(c.segment, c.change) for c in later if c.segment == "deep"] == [("deep", "exited")]
