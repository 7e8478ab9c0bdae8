"""One rule over many values (docs/rules.md): a for_each file is a segment per value, each
reading a window kept by that value; the window's values per customer stay within ``keep``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.engine import Engine
from streams.engine.bounds import largest_record
from streams.model.limits import DEFAULT_LIMITS
from streams.rules import deployments
from streams.rules.load import check_pack, load_pack
from streams.rules.problems import Kind
from tests.unit.scenario import DEFAULT_RULES, START, Scenario, days, event, hours, iso

pytestmark = pytest.mark.unit

CATEGORIES = ("electronics", "apparel", "home", "beauty", "sports", "books")


def pack_with(tmp_path: Path, files: dict[str, str], *, drop: tuple[str, ...] = ()) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, folder, ignore=shutil.ignore_patterns("tests", "templates"))
    for name in drop:
        (folder / name).unlink()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def view(s: Scenario, at: int, category: str) -> None:
    s.product_view("c1", at, sku=f"{category}-{at}", category=category)


def test_a_segment_per_value_each_counting_its_own_category() -> None:
    pack = load_pack(DEFAULT_RULES)
    names = {rule.name for rule in pack.rules}
    assert {f"category_affinity_{c}" for c in CATEGORIES} <= names
    s = Scenario(pack)
    for i in range(3):
        view(s, hours(i), "sports")
    view(s, hours(3), "home")
    [change] = [c for c in s.log if c.segment.startswith("category_affinity")]
    assert (change.segment, change.at) == ("category_affinity_sports", iso(hours(2)))
    assert change.reason == {"windows.category_views_30d[sports]": 3}


def test_a_record_keeps_at_most_keep_values_of_a_keyed_window() -> None:
    s = Scenario()
    for i, category in enumerate(CATEGORIES * 2):
        view(s, hours(i), category)
    state = s.engine.states["c1"]
    kept = sorted(name for name in state.windows if name.startswith("category_views_30d#"))
    # The three counted last (each counted twice now, the others forgotten on the way).
    assert kept == ["category_views_30d#beauty", "category_views_30d#books", "category_views_30d#sports"]
    pack = load_pack(DEFAULT_RULES)
    window = pack.windows["category_views_30d"]
    assert window.keep == 3 and window.values == frozenset(CATEGORIES)


def test_values_no_segment_reads_are_not_counted() -> None:
    s = Scenario()
    for i in range(5):
        view(s, hours(i), "garden")
    assert not [name for name in s.engine.states["c1"].windows if name.startswith("category_views_30d")]


def test_the_bound_of_a_record_counts_each_kept_value(tmp_path: Path) -> None:
    small = load_pack(DEFAULT_RULES)
    folder = pack_with(tmp_path, {})
    pack_file = folder / "pack.toml"
    pack_file.write_text(pack_file.read_text().replace("keep = 3", "keep = 6"))
    larger = load_pack(folder)
    assert largest_record(larger, DEFAULT_LIMITS) - largest_record(small, DEFAULT_LIMITS) >= 3 * 64 * 2 * 9


@pytest.mark.parametrize(("files", "kind", "message"), [
    ({"fans.toml": 'name = "fans"\nversion = 1\nwhen = "windows.category_views_30d >= 3"\n'},
     Kind.NOT_ALLOWED, "window `category_views_30d` is kept per value"),
    ({"fans.toml": 'name = "fans"\nversion = 1\nfor_each = ["Home Decor"]\nwhen = "windows.category_views_30d >= 3"\n'},
     Kind.BAD_VALUE, "for_each value 'Home Decor': 'fans_Home Decor' is not a lower_snake_case segment name"),
    ({"fans.toml": 'name = "fans"\nversion = 1\nfor_each = []\nwhen = "orders > 1"\n'},
     Kind.BAD_VALUE, "for_each lists no values"),
])
def test_for_each_mistakes_are_named(tmp_path: Path, files: dict[str, str], kind: Kind, message: str) -> None:
    problems = check_pack(pack_with(tmp_path, files))
    assert any(p.kind == kind and message in p.message and p.file == "fans.toml" for p in problems), problems


def test_a_keyed_window_deployed_is_filled_from_history_and_judged_at_the_switch(tmp_path: Path) -> None:
    # Before: the pack without category_affinity (nor its window); after: the default pack.
    before = pack_with(tmp_path / "before", {}, drop=("category_affinity.toml",))
    text = (before / "pack.toml").read_text()
    start = text.index("[windows.category_views_30d]")
    (before / "pack.toml").write_text(text[:start] + text[text.index("[windows.checkouts_30d]"):]
                                      .replace('version = "1"', 'version = "0"'))
    switch_at = START + days(1)
    engine = Engine(load_pack(before),
                    deployments=deployments.schedule([deployments.of_folder(DEFAULT_RULES, switch_at)]))
    changes = []
    for i in range(3):
        result = engine.process_bytes(event("product_view", hours(i), "c1", sku=f"b{i}", category="books"))
        assert isinstance(result, list)
        changes += result
    changes += engine.advance(switch_at)
    [entered] = [c for c in changes if c.segment == "category_affinity_books"]
    assert (entered.change, entered.at) == ("entered", iso(days(1)))
    assert entered.reason["deployment"] == {"pack_version": "1", "rule": "added"}
    assert engine.states["c1"].windows.keys() >= {"category_views_30d#books"}
