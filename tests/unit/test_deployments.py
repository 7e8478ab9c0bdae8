"""Rule deployments in the engine: one instant, re-judged customers, windows filled from history."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.engine import Engine
from streams.model.changes import SegmentChange
from streams.model.clock import parse_instant
from streams.model.events import BadEvent, decode
from streams.rules import deployments
from streams.rules.deployments import Scheduled
from streams.rules.load import load_pack
from tests.packs import pack_v2
from tests.unit.scenario import DEFAULT_RULES, START, days, event, hours, iso, minutes

pytestmark = pytest.mark.unit

def scheduled(folder: Path, at: int) -> Scheduled:
    return deployments.schedule([deployments.of_folder(folder, at)])[0]


def feed(engine: Engine, *raws: bytes) -> list[SegmentChange]:
    out: list[SegmentChange] = []
    for raw in raws:
        result = engine.process_bytes(raw)
        assert isinstance(result, list), result
        out += result
    return out


def history() -> list[bytes]:
    return [
        # c1: electronics fan (category_affinity_electronics), two orders (repeat_customer under v1)
        *[event("product_view", hours(i), "c1", category="electronics", product_id=f"p{i}") for i in range(3)],
        event("order_completed", hours(4), "c1", order_id="o1", total=20.0),
        event("order_completed", hours(5), "c1", order_id="o2", total=30.0),
        # c2: two pricing views a day before the switch, long before it would be a lead
        event("page_view", days(9), "c2", page_type="pricing"),
        event("page_view", days(9) + hours(1), "c2", page_type="pricing"),
        event("order_completed", days(9) + hours(2), "c2", order_id="o3", total=10.0),
    ]


SWITCH = days(10)


def by(changes: list[SegmentChange], customer: str, segment: str) -> list[tuple[str, str]]:
    return [(c.change, c.at) for c in changes if c.customer_id == customer and c.segment == segment]


def test_the_switch_exits_removed_judges_changed_and_fills_new_windows_from_history(tmp_path: Path) -> None:
    v1 = load_pack(DEFAULT_RULES)
    engine = Engine(v1, deployments=[scheduled(pack_v2(tmp_path), START + SWITCH)])
    before = feed(engine, *history())
    assert by(before, "c1", "category_affinity_electronics") == [("entered", iso(hours(2)))]
    assert by(before, "c1", "repeat_customer") == [("entered", iso(hours(5)))]
    after = engine.finish(START + SWITCH + minutes(1))
    at = iso(SWITCH)
    assert by(after, "c1", "category_affinity_electronics") == [("exited", at)]
    assert by(after, "c1", "repeat_customer") == [("exited", at)]
    assert by(after, "c2", "pricing_lurker") == [("entered", at)]
    removed = next(c for c in after if c.segment == "category_affinity_electronics")
    assert removed.reason == {"deployment": {"pack_version": "2", "rule": "removed"}}
    lurker = next(c for c in after if c.segment == "pricing_lurker")
    assert lurker.reason == {"windows.pricing_views_7d_new": 2,
                             "deployment": {"pack_version": "2", "rule": "added"}}
    assert all(c.pack_version == "2" for c in after)
    assert engine.pack.version == "2"
    # Nothing else moved: the switch judged only what changed.
    assert {(c.customer_id, c.segment) for c in after} == {
        ("c1", "category_affinity_electronics"), ("c1", "repeat_customer"), ("c2", "pricing_lurker")}


def test_before_the_instant_the_old_pack_and_at_it_the_new(tmp_path: Path) -> None:
    v1 = load_pack(DEFAULT_RULES)
    engine = Engine(v1, deployments=[scheduled(pack_v2(tmp_path), START + SWITCH)])
    feed(engine, event("order_completed", 0, "c3", order_id="a", total=5.0))
    just_before = feed(engine, event("order_completed", SWITCH - 1, "c3", order_id="b", total=5.0))
    assert by(just_before, "c3", "repeat_customer") == [("entered", iso(SWITCH - 1))]
    assert just_before[0].pack_version == "1"
    at_switch = feed(engine, event("order_completed", SWITCH, "c3", order_id="c", total=5.0))
    # The switch came first (2 orders: out under v2), then the third order at the same instant.
    assert by(at_switch, "c3", "repeat_customer") == [("exited", iso(SWITCH)), ("entered", iso(SWITCH))]


def test_a_rollback_is_a_deployment_like_any_other(tmp_path: Path) -> None:
    v1 = load_pack(DEFAULT_RULES)
    back = START + SWITCH + days(1)
    engine = Engine(v1, deployments=[scheduled(pack_v2(tmp_path), START + SWITCH),
                                      scheduled(DEFAULT_RULES, back)])
    feed(engine, *history())
    changes = engine.finish(back + minutes(1))
    assert by(changes, "c1", "category_affinity_electronics") == [("exited", iso(SWITCH)), ("entered", iso(SWITCH + days(1)))]
    assert by(changes, "c1", "repeat_customer") == [("exited", iso(SWITCH)), ("entered", iso(SWITCH + days(1)))]
    assert by(changes, "c2", "pricing_lurker") == [("entered", iso(SWITCH)), ("exited", iso(SWITCH + days(1)))]
    assert engine.pack.version == "1"
    assert not any(name.startswith("pricing_views_7d_new") for s in engine.states.values() for name in s.windows)


def test_a_worker_learning_of_a_deployment_late_fills_the_new_window_from_history(tmp_path: Path) -> None:
    """Live, a deployment arrives while the engine runs: the events before it come back from
    the input topics (prefill); the switch then judges as replay does from the start."""
    v1, v2 = load_pack(DEFAULT_RULES), scheduled(pack_v2(tmp_path), START + SWITCH)
    replayed = Engine(v1, deployments=[v2])
    feed(replayed, *history())
    expected = replayed.finish(START + SWITCH)
    assert any(c.segment == "pricing_lurker" for c in expected)

    live = Engine(v1)
    feed(live, *history()[:6])
    assert live.deploy(v2) == []
    assert live.needs_history()
    for raw in history()[:6]:
        decoded = decode(raw)
        assert not isinstance(decoded, BadEvent)
        live.prefill(decoded.customer_id or "", decoded)
    feed(live, *history()[6:])
    assert [(c.customer_id, c.segment, c.change, c.at) for c in live.finish(START + SWITCH)] == [
        (c.customer_id, c.segment, c.change, c.at) for c in expected]


def test_a_restarted_engine_past_the_instant_runs_the_new_pack_without_switching_again(tmp_path: Path) -> None:
    v1 = load_pack(DEFAULT_RULES)
    deployment = scheduled(pack_v2(tmp_path), START + SWITCH)
    engine = Engine(v1, deployments=[deployment])
    feed(engine, *history())
    engine.finish(START + SWITCH + hours(1))
    again = Engine.restore(v1, engine.snapshot())
    restarted = Engine(v1, states=again.states, aliases=again.aliases, clock=again.clock, deployments=[deployment])
    assert restarted.pack.version == "2" and not restarted.pending
    assert restarted.finish(START + SWITCH + hours(2)) == []


def test_a_condition_changed_without_a_new_version_is_still_judged_again(tmp_path: Path) -> None:
    folder = tmp_path / "same-version"
    shutil.copytree(DEFAULT_RULES, folder, ignore=shutil.ignore_patterns("tests", "templates"))
    repeat = folder / "repeat_customer.toml"
    repeat.write_text(repeat.read_text().replace('when = "orders >= 2"', 'when = "orders >= 3"'))
    engine = Engine(load_pack(DEFAULT_RULES), deployments=[scheduled(folder, START + SWITCH)])
    feed(engine, *history())
    assert by(engine.finish(START + SWITCH), "c1", "repeat_customer") == [("exited", iso(SWITCH))]


def test_deployments_file_round_trip(tmp_path: Path) -> None:
    d = deployments.of_folder(DEFAULT_RULES, parse_instant("2026-12-01T00:00:00Z"), by="ana", note="first")
    path = tmp_path / "deployments.jsonl"
    path.write_bytes(deployments.encode(d) + b"\n")
    [back] = deployments.read_file(path)
    assert back == d
    assert deployments.compile_pack(back).digest == load_pack(DEFAULT_RULES).digest


def test_a_deploy_refuses_a_broken_pack_and_failing_rule_tests_listing_every_problem(tmp_path: Path) -> None:
    from streams.tools.deploy import problems, unversioned

    broken = tmp_path / "broken"
    shutil.copytree(DEFAULT_RULES, broken)
    (broken / "repeat_customer.toml").write_text('name = "repeat_customer"\nversion = 1\nwhen = "orderz >= 2"\n')
    (broken / "new_visitor.toml").write_text('name = "new_visitor"\nversion = 1\nwhen = "events >="\n')
    pack, found = problems(str(broken))
    assert pack is None and len(found) == 2
    assert any("repeat_customer.toml" in p and "orderz" in p for p in found)
    assert any("new_visitor.toml" in p for p in found)

    failing = tmp_path / "failing"
    shutil.copytree(DEFAULT_RULES, failing)
    repeat = failing / "repeat_customer.toml"
    repeat.write_text(repeat.read_text().replace("version = 1", "version = 2").replace(">= 2", ">= 3"))
    pack, found = problems(str(failing))
    assert pack is not None and any("FAILED" in p and "repeat_customer" in p for p in found)

    silent = tmp_path / "silent"
    shutil.copytree(DEFAULT_RULES, silent)
    repeat = silent / "repeat_customer.toml"
    repeat.write_text(repeat.read_text().replace(">= 2", ">= 3"))
    [problem] = unversioned(load_pack(silent), load_pack(DEFAULT_RULES))
    assert "repeat_customer" in problem and "version = 2" in problem


def test_the_guard_rail_stops_a_consent_gated_segment_taking_in_too_many_at_once() -> None:
    from collections import Counter

    from streams.live.preview import Preview
    from streams.tools.deploy import too_large

    pack = load_pack(DEFAULT_RULES)
    seen = Preview(at=0, customers=1000, counts={"sms_cart_recovery": Counter(entered=101),
                                                 "cart_abandoner": Counter(entered=900)})
    [problem] = too_large(pack, seen, 0.10)
    assert "sms_cart_recovery" in problem and "101" in problem and "sms consent" in problem
    seen.counts["sms_cart_recovery"]["entered"] = 100
    assert too_large(pack, seen, 0.10) == []


def test_a_new_trait_is_filled_from_history_with_its_latest_value(tmp_path: Path) -> None:
    folder = tmp_path / "traits"
    shutil.copytree(DEFAULT_RULES, folder, ignore=shutil.ignore_patterns("tests", "templates"))
    pack_toml = folder / "pack.toml"
    pack_toml.write_text(pack_toml.read_text().replace('plan = "string"', 'plan = "string"\ntier = "string"'))
    (folder / "gold.toml").write_text('name = "gold"\nversion = 1\nwhen = \'traits.tier == "gold"\'\n')
    v1, v2 = load_pack(DEFAULT_RULES), scheduled(folder, START + SWITCH)
    updates = [event("profile_updated", days(1), "c9", traits={"tier": "silver"}),
               event("profile_updated", days(2), "c9", traits={"tier": "gold"}),
               event("profile_updated", days(3), "c8", traits={"tier": "gold"})]
    later = [event("profile_updated", days(4), "c8", traits={"tier": "bronze"})]

    replayed = Engine(v1, deployments=[v2])
    feed(replayed, *updates, *later)
    expected = [(c.customer_id, c.segment, c.change) for c in replayed.finish(START + SWITCH)
                if c.segment == "gold"]
    assert expected == [("c9", "gold", "entered")]

    live = Engine(v1)
    feed(live, *updates)
    live.deploy(v2)
    feed(live, *later)  # applied live after the deploy: history must not undo it
    for raw in updates:
        decoded = decode(raw)
        assert not isinstance(decoded, BadEvent)
        live.prefill(decoded.customer_id or "", decoded)
    assert [(c.customer_id, c.segment, c.change) for c in live.finish(START + SWITCH)
            if c.segment == "gold"] == expected


def test_a_deployment_that_cannot_be_used_is_refused_with_what_is_wrong(tmp_path: Path) -> None:
    from streams.errors import SegmenterError

    good = deployments.of_folder(DEFAULT_RULES, START)
    bad_time = tmp_path / "bad-time.jsonl"
    bad_time.write_bytes(deployments.encode(good).replace(good.effective_at.encode(), b"yesterday") + b"\n")
    with pytest.raises(SegmenterError, match=r"bad-time\.jsonl:1: .*effective_at"):
        deployments.read_file(bad_time)
    with pytest.raises(SegmenterError, match="cannot read"):
        deployments.read_file(tmp_path / "missing.jsonl")
    tampered = deployments.Deployment(**{**{f: getattr(good, f) for f in good.__struct_fields__},
                                         "files": {**good.files, "extra.toml": 'name = "x"'}})
    with pytest.raises(SegmenterError, match="do not match its digest"):
        deployments.compile_pack(tampered)
    escaping = {"../pack.toml": "", **good.files}
    sneaky = deployments.Deployment(**{**{f: getattr(good, f) for f in good.__struct_fields__},
                                       "files": escaping, "digest": deployments.digest_of(escaping)})
    with pytest.raises(SegmenterError, match="not a rule file name"):
        deployments.compile_pack(sneaky)
