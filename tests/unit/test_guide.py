"""docs/rules.md as a reader follows it: every example in it runs, in order, on a copy of the rules.

Each fenced block in the guide is preceded by a marker saying what to do with it:

- ``<!-- test: file PATH -->``: the block is the whole content of PATH (written);
- ``<!-- test: append PATH -->``: the block is added at the end of PATH;
- ``<!-- test: edit PATH -->``: a ``diff`` block of ``-``/``+`` lines; the ``-`` lines are
  replaced by the ``+`` lines (they must occur exactly once);
- ``<!-- test: run -->`` / ``<!-- test: run, fails -->``: a shell block run with bash, where
  ``segmenter`` is this checkout's CLI; it must exit 0 / non-zero;
- ``<!-- test: output -->``: the lines of the block appear in the previous run's output, in
  that order, ``...`` standing for any text within a line (and for any lines, on its own);
- ``<!-- test: expressions -->`` / ``<!-- test: expressions, invalid -->``: one condition per
  line, each of which must load / must be rejected as a segment's ``when``;
- ``<!-- test: skip (why) -->``: shown only.

A block without a marker fails the test, so no example can go untested by accident.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.rules.fields import STATE_FIELDS
from streams.rules.load import check_pack

from scenario import DEFAULT_RULES, ROOT

GUIDE = ROOT / "docs" / "rules.md"
TEMPLATES = DEFAULT_RULES / "templates"
CLI = [sys.executable, "-m", "streams.cli"]

_MARKER = re.compile(r"^<!--\s*test:\s*(?P<action>[a-z]+(?:,\s*[a-z]+)?)(?:\s+(?P<arg>[^ ]+?))?(?:\s+\(.*\))?\s*-->$")


@dataclass
class Block:
    line: int
    lang: str
    text: str
    action: str | None
    arg: str | None


def blocks(markdown: str) -> list[Block]:
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            start = i
            lang = lines[i][3:].strip()
            body = []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            marker = _MARKER.match(lines[start - 1].strip()) if start else None
            found.append(Block(start + 1, lang, "\n".join(body) + "\n",
                               marker.group("action") if marker else None, marker.group("arg") if marker else None))
        i += 1
    return found


def copy_rules(tmp_path: Path) -> Path:
    shutil.copytree(DEFAULT_RULES, tmp_path / "rules")
    return tmp_path / "rules"


def segmenter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def fill_template(template: str, **values: str) -> str:
    """The template with ``key = ...`` lines replaced, the way a reader fills it in."""
    for key, value in values.items():
        template, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", template, count=1, flags=re.M)
        assert count == 1, f"the template has no `{key} = ` line"
    return template


# --- the walkthrough, step by step ---------------------------------------------------------------


PRICING_FAN_TEST = """\
[[case]]
name = "two pricing views in a week enter; exits when the first is 7 days old"
start = "2026-03-01T10:00:00Z"
events = [
  { at = "+0m", type = "page_view", customer_id = "c1", properties = { page_type = "pricing" } },
  { at = "+1d", type = "page_view", customer_id = "c1", properties = { page_type = "pricing" } },
]
until = "+30d"
expect = [
  { at = "+1d", customer_id = "c1", segment = "pricing_fan", change = "entered" },
  { at = "+7d", customer_id = "c1", segment = "pricing_fan", change = "exited" },
]
"""


def test_a_new_segment_from_the_template_to_a_passing_rule_test(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    template = (TEMPLATES / "segment.toml.example").read_text()
    (rules / "pricing_fan.toml").write_text(fill_template(
        template, name='"pricing_fan"', when="'windows.pricing_views_7d >= 2 and orders == 0'"))
    (rules / "tests" / "pricing_fan.toml").write_text(PRICING_FAN_TEST)

    validate = segmenter("rules", "validate", cwd=tmp_path)
    assert validate.returncode == 0, validate.stderr
    assert "pricing_fan v1 (pricing_fan.toml)" in validate.stdout

    run = segmenter("rules", "test", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok      rules/tests/pricing_fan.toml: two pricing views in a week enter" in run.stdout
    assert "FAILED" not in run.stdout
    assert re.search(r"^\d+ passed, 0 failed$", run.stdout, re.M)

    (rules / "tests" / "pricing_fan.toml").write_text(PRICING_FAN_TEST.replace('at = "+7d"', 'at = "+6d"'))
    broken = segmenter("rules", "test", cwd=tmp_path)
    assert broken.returncode == 1
    out = broken.stdout
    assert ("FAILED  rules/tests/pricing_fan.toml: two pricing views in a week enter; exits when the first "
            "is 7 days old") in out
    assert "- expected  + actual" in out
    assert re.search(r"^ +  2026-03-02T10:00:00Z \(\+1d\) +c1  pricing_fan  entered$", out, re.M)
    assert re.search(r"^ +- 2026-03-07T10:00:00Z \(\+6d\) +c1  pricing_fan  exited$", out, re.M)
    assert re.search(r"^ +\+ 2026-03-08T10:00:00Z \(\+7d\) +c1  pricing_fan  exited$", out, re.M)
    assert re.search(r"^\d+ passed, 1 failed$", out, re.M)


def test_the_templates_as_shipped_are_a_valid_segment_and_a_passing_test(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    shutil.copy(TEMPLATES / "segment.toml.example", rules / "my_segment.toml")
    shutil.copy(TEMPLATES / "test.toml.example", rules / "tests" / "my_segment.toml")
    run = segmenter("rules", "test", "rules", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok      rules/tests/my_segment.toml:" in run.stdout


def test_templates_are_not_loaded_as_segments() -> None:
    assert not list(TEMPLATES.glob("*.toml"))
    assert sorted(p.name for p in TEMPLATES.iterdir()) == ["segment.toml.example", "test.toml.example"]


def test_rule_errors_stop_the_tests_with_the_errors(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    (rules / "broken.toml").write_text('name = "broken"\nversion = 1\nwhen = "ordrs > 1"\n')
    run = segmenter("rules", "test", cwd=tmp_path)
    assert run.returncode == 1
    assert "broken.toml:3: rule 'broken': `when` column 1: unknown field `ordrs`" in run.stderr
    assert "passed" not in run.stdout


# --- every example in the guide --------------------------------------------------------------------


GUIDES = [GUIDE, ROOT / "docs" / "activation.md"]


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_block_in_the_guide_is_marked(guide: Path) -> None:
    unmarked = [f"docs/{guide.name}:{b.line} ({b.lang or 'no language'})" for b in blocks(guide.read_text())
                if b.action is None]
    assert not unmarked, "blocks without a <!-- test: ... --> marker: " + ", ".join(unmarked)


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_the_guide_runs_as_written(guide: Path, tmp_path: Path) -> None:
    copy_rules(tmp_path)
    output: str | None = None
    for block in blocks(guide.read_text()):
        where = f"docs/{guide.name}:{block.line}"
        action = block.action or ""
        if action == "skip":
            continue
        if action in ("file", "append", "edit"):
            assert block.arg, f"{where}: `{action}` needs a path"
            path = tmp_path / block.arg
            if action == "file":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(block.text)
            elif action == "append":
                path.write_text(path.read_text() + "\n" + block.text)
            else:
                path.write_text(_apply_edit(path.read_text(), block.text, where))
        elif action in ("run", "run, fails"):
            script = f"set -e\nsegmenter() {{ {shlex.join(CLI)} \"$@\"; }}\n{block.text}"
            result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                                    timeout=120, check=False)
            output = result.stdout + result.stderr
            if action == "run":
                assert result.returncode == 0, f"{where}: exit {result.returncode}\n{output}"
            else:
                assert result.returncode != 0, f"{where}: expected a failure\n{output}"
        elif action == "output":
            assert output is not None, f"{where}: an output block needs a run block before it"
            got = iter(output.splitlines())
            for line in block.text.splitlines():
                if line.strip() in ("", "..."):
                    continue
                assert any(_matches(line, actual) for actual in got), (
                    f"{where}: this line of the guide is not in the output (in this order):\n{line}\n"
                    f"--- output:\n{output}")
        elif action in ("expressions", "expressions, invalid"):
            for expression in block.text.splitlines():
                if not expression.strip() or expression.lstrip().startswith("#"):
                    continue
                problems = _check_expression(tmp_path / "rules", expression)
                if action == "expressions":
                    assert not problems, f"{where}: `{expression}` does not load:\n" + "\n".join(map(str, problems))
                else:
                    assert problems, f"{where}: `{expression}` is shown as rejected but loads"
        else:
            pytest.fail(f"{where}: unknown marker `{action}`")


def test_the_guide_lists_every_field_a_rule_can_read() -> None:
    text = GUIDE.read_text()
    missing = [name for name in STATE_FIELDS if f"`{name}`" not in text]
    assert not missing, f"docs/rules.md does not describe: {', '.join(missing)}"


def _apply_edit(text: str, diff: str, where: str) -> str:
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    old, new = "\n".join(removed), "\n".join(added)
    assert text.count(old) == 1, f"{where}: the lines to change occur {text.count(old)} times, not once:\n{old}"
    return text.replace(old, new)


def _matches(expected: str, line: str) -> bool:
    """``expected`` with ``...`` standing for any text: its pieces occur in ``line`` in order."""
    position = 0
    for piece in expected.rstrip().split("..."):
        found = line.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def _check_expression(rules: Path, expression: str) -> list[object]:
    path = rules / "zz_doc_expression.toml"
    path.write_text(f"name = \"zz_doc_expression\"\nversion = 1\nwhen = '''{expression}'''\n")
    try:
        return list(check_pack(rules))
    finally:
        path.unlink()
