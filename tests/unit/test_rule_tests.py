"""Rule tests: every case shipped in rules/tests passes, and a wrong one says what went wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.cli import main
from streams.offline import ruletest
from streams.offline.ruletest import Broken, Case, CaseFile

from scenario import DEFAULT_RULES, default_pack

SHIPPED = ruletest.discover(DEFAULT_RULES)
CASES = [(file, case) for file in SHIPPED for case in file.cases]


@pytest.mark.parametrize(("file", "case"), CASES, ids=[f"{f.path.name}::{c.name}" for f, c in CASES])
def test_shipped_rule_test(file: CaseFile, case: Case | Broken) -> None:
    outcome = ruletest.run_case(default_pack(), case, file=file.path.name)
    assert outcome.passed, outcome.render()


def test_every_shipped_test_file_reads() -> None:
    assert SHIPPED, "rules/tests holds no rule tests"
    assert [(f.path.name, f.error) for f in SHIPPED if f.error] == []


def test_every_default_segment_is_tested_entering_and_exiting() -> None:
    changes = {(e.segment, e.change) for _, case in CASES if isinstance(case, Case) for e in case.expect}
    for rule in default_pack().rules:
        assert (rule.name, "entered") in changes, f"no rule test expects {rule.name} to be entered"
        assert (rule.name, "exited") in changes, f"no rule test expects {rule.name} to be exited"


def test_the_command_on_the_default_pack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(DEFAULT_RULES)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"{len(CASES)} passed, 0 failed"
    assert all(line.startswith("ok      ") for line in out[:-1])


# --- a wrong expectation, and mistakes in test files ----------------------------------------------


def write_case(tmp_path: Path, text: str) -> Path:
    shutil.copytree(DEFAULT_RULES, tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    (tmp_path / "rules" / "tests").mkdir()
    (tmp_path / "rules" / "tests" / "t.toml").write_text(text)
    return tmp_path / "rules"


def run_only(rules: Path) -> list[ruletest.Outcome]:
    return ruletest.run_folder(default_pack(), rules)


WRONG = """\
[[case]]
name = "abandoned at 25 minutes"
start = "2026-03-01T10:00:00Z"
events = [
  { at = "+0m", type = "add_to_cart", customer_id = "c1", properties = { sku = "A" } },
  { at = "+1h", type = "order_completed", customer_id = "c1", properties = { total = 5 } },
]
until = "+2h"
expect = [
  { at = "+25m", customer_id = "c1", segment = "cart_abandoner", change = "entered" },
  { at = "2026-03-01T11:00:00Z", customer_id = "c1", segment = "cart_abandoner", change = "exited" },
  { at = "+1h", customer_id = "c2", segment = "cart_abandoner", change = "exited" },
]
"""


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rules = write_case(tmp_path, WRONG)
    assert main(["rules", "test", str(rules)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"FAILED  {rules}/tests/t.toml: abandoned at 25 minutes",
        "        changes of cart_abandoner:  - expected  + actual",
        "        - 2026-03-01T10:25:00Z (+25m)  c1  cart_abandoner  entered",
        "        + 2026-03-01T10:30:00Z (+30m)  c1  cart_abandoner  entered",
        "          2026-03-01T11:00:00Z (+1h)   c1  cart_abandoner  exited",
        "        - 2026-03-01T11:00:00Z (+1h)   c2  cart_abandoner  exited",
        "no case is about: " + ", ".join(sorted(r.name for r in default_pack().rules if r.name != "cart_abandoner")),
        "0 passed, 1 failed",
    ]


def test_only_the_case_segments_are_compared_and_silence_can_be_expected(tmp_path: Path) -> None:
    rules = write_case(tmp_path, """\
[[case]]
name = "no cart, no abandoner"
start = "2026-03-01T10:00:00Z"
events = [ { at = "+0m", type = "page_view", customer_id = "c1" } ]
until = "+1d"
only = ["cart_abandoner"]

[[case]]
name = "but a new visitor"
start = 2026-03-01T10:00:00Z
events = [ { at = "+0m", type = "page_view", customer_id = "c1" } ]
until = "+1d"
only = ["cart_abandoner"]
expect = [ { at = "+0m", customer_id = "c1", segment = "new_visitor", change = "entered" } ]
""")
    first, second = run_only(rules)
    assert first.passed, first.render()
    assert not second.passed
    assert "- 2026-03-01T10:00:00Z (+0s)  c1  new_visitor  entered" in second.detail


def test_mistakes_name_the_file_the_case_and_the_fix(tmp_path: Path) -> None:
    rules = write_case(tmp_path, """\
[[case]]
name = "typo"
start = "2026-03-01T10:00:00Z"
events = [ { at = "+0m", type = "page_view", customer = "c1" } ]
expect = []

[[case]]
name = "several"
events = [ { at = "+0m", type = "page_veiw", customer_id = "c1" } ]
expect = [ { at = "2026-03-01T10:00:00", customer_id = "c1", segment = "new_vistor", change = "entered" } ]

[[case]]
name = "nothing to compare"
start = "2026-03-01T10:00:00Z"
events = [ { at = "+0m", type = "page_view", customer_id = "c1" } ]

[[case]]
name = "nothing to compare"
start = "2026-03-01T10:00:00Z"
events = [ { at = "+2h", type = "page_view", customer_id = "c1" } ]
until = "+1h"
only = ["new_visitor"]
""")
    typo, several, nothing, duplicate = run_only(rules)
    assert typo.title == f"{rules}/tests/t.toml: typo"
    assert "unknown field `customer` - at `$.events[0]`; did you mean `customer_id`?" in typo.detail
    assert "`events[0].at`: '+0m' is an offset, but the case has no `start`" in several.detail
    assert "unknown event type 'page_veiw'; did you mean `page_view`?" in several.detail
    assert "`expect[0].at`: '2026-03-01T10:00:00' has no UTC offset" in several.detail
    assert "no segment 'new_vistor' in the rules; did you mean `new_visitor`?" in several.detail
    assert "names no segment" in nothing.detail
    assert duplicate.case == "nothing to compare" and "same name" in duplicate.detail


def test_a_file_that_is_not_a_test_file_fails_as_a_whole(tmp_path: Path) -> None:
    rules = write_case(tmp_path, '[[cases]]\nname = "x"\n')
    (rules / "tests" / "u.toml").write_text('name = "x\n')
    (rules / "tests" / "v.toml").write_text("# nothing yet\n")
    t, u, v = run_only(rules)
    assert not t.passed and t.case == "" and "unknown field `cases`; did you mean `case`?" in t.detail
    assert not u.passed and "not valid TOML" in u.detail
    assert not v.passed and "no cases" in v.detail


def test_a_rejected_event_fails_the_case_with_the_reason(tmp_path: Path) -> None:
    rules = write_case(tmp_path, """\
[[case]]
name = "an order needs a customer"
start = "2026-03-01T10:00:00Z"
events = [ { at = "+0m", type = "order_completed", anonymous_id = "v1", properties = { total = 3 } } ]
only = ["first_time_buyer"]
""")
    [outcome] = run_only(rules)
    assert not outcome.passed
    assert ("events[0] (order_completed at 2026-03-01T10:00:00Z) was rejected: `customer_id` is required"
            in outcome.detail)


def test_events_run_in_the_order_written_and_duplicates_are_dropped(tmp_path: Path) -> None:
    rules = write_case(tmp_path, """\
[[case]]
name = "a late second order: both changes stamped with the customer's time, in order"
start = "2026-03-01T10:00:00Z"
events = [
  { at = "+10m", type = "order_completed", customer_id = "c1", properties = { total = 10 } },
  { at = "+5m", type = "order_completed", customer_id = "c1", properties = { total = 10 } },
]
until = "+1h"
expect = [
  { at = "+10m", customer_id = "c1", segment = "first_time_buyer", change = "entered" },
  { at = "+10m", customer_id = "c1", segment = "first_time_buyer", change = "exited" },
]

[[case]]
name = "the second event with the same id is dropped"
start = "2026-03-01T10:00:00Z"
events = [
  { at = "+0m", type = "add_to_cart", customer_id = "c1", event_id = "dup", properties = { sku = "B" } },
  { at = "+1m", type = "add_to_cart", customer_id = "c1", event_id = "dup", properties = { sku = "C" } },
  { at = "+2m", type = "add_to_cart", customer_id = "c1", properties = { sku = "D" } },
  { at = "+3m", type = "remove_from_cart", customer_id = "c1", properties = { sku = "B" } },
  { at = "+4m", type = "remove_from_cart", customer_id = "c1", properties = { sku = "D" } },
]
until = "+2h"
only = ["cart_abandoner"]
""")
    late, duplicate = run_only(rules)
    assert late.passed, late.render()
    assert duplicate.passed, duplicate.render()  # C never got in, so the cart is empty from +4m


def test_offsets_and_times() -> None:
    start = ruletest.parse_time("2026-03-01T10:00:00Z", None)
    assert ruletest.parse_time("+1d12h", start) - start == ruletest.parse_time("+36h", start) - start
    assert ruletest.parse_time("-5m", start) == ruletest.parse_time("2026-03-01T09:55:00Z", None)
    assert ruletest.format_offset(36 * 3600 * 1_000_000) == "+1d12h"
    assert ruletest.format_offset(-90 * 1_000_000) == "-1m30s"
    assert ruletest.format_offset(0) == "+0s"
    with pytest.raises(ValueError, match="no `start`"):
        ruletest.parse_time("+5m", None)
    with pytest.raises(ValueError, match="not a time"):
        ruletest.parse_time("yesterday", start)


def test_no_rule_tests_is_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, rules, ignore=shutil.ignore_patterns("tests"))
    assert main(["rules", "test", str(rules)]) == 1
    assert "no rule tests" in capsys.readouterr().out
