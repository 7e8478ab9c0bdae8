"""Rule tests: small TOML files next to the rules that say what a segment must do.

A rules folder may hold ``tests/*.toml`` (the loader reads no sub-folder, so these are never
taken for segments). Each file holds one or more cases::

    [[case]]
    name = "enters 30 minutes after the last cart activity"
    start = "2026-03-01T10:00:00Z"
    events = [
      { at = "+0m", type = "add_to_cart", customer_id = "c1", properties = { sku = "A" } },
    ]
    until = "+2h"
    expect = [
      { at = "+30m", customer_id = "c1", segment = "cart_abandoner", change = "entered" },
    ]

A case runs in a fresh :class:`~streams.engine.Engine`: its events, in the order written, go
in as JSON exactly as they would come off Kafka, then the clock moves to ``until`` (or stays
at the last event), firing the deadlines due by then. The changes of the segments the case is
about (``only``, or else the segments its ``expect`` names) must be exactly the expected ones,
for every customer. Times are ISO 8601 with an offset, or offsets from ``start`` such as
``+30m``, ``+1d12h`` or ``-5m``.

Files are decoded into msgspec Structs that forbid unknown keys, like the rule files, and each
case on its own, so one broken case is reported with its name and the others still run.
"""

from __future__ import annotations

import difflib
import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, TextIO

import msgspec

from streams.engine import Engine
from streams.model.changes import SegmentChange
from streams.model.clock import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    UNITS,
    Instant,
    format_instant,
    parse_instant,
)
from streams.model.events import EVENT_TYPES, BadEvent
from streams.rules.pack import RulePack
from streams.rules.problems import did_you_mean
from streams.rules.specs import StrictFile

TESTS_DIR = "tests"

_OFFSET = re.compile(r"^([+-])\s*((?:\d+\s*[smhdw]\s*)+)$")
_OFFSET_PART = re.compile(r"(\d+)\s*([smhdw])")
_GENERATED_ID = "ruletest-{case}-{event}"


class EventSpec(StrictFile):
    """One input event. ``at`` becomes the event's ``ts``; the rest is the envelope of an input event (docs/contract.md)."""

    at: str
    type: str
    customer_id: str | None = None
    anonymous_id: str | None = None
    event_id: str | None = None
    """Omitted: a deterministic id unique within the case. Give one to test duplicates."""
    session_id: str | None = None
    device: str | None = None
    channel: str | None = None
    properties: dict[str, Any] | None = None


class Expectation(StrictFile):
    at: str
    customer_id: str
    segment: str
    change: Literal["entered", "exited"]


class Case(StrictFile):
    name: str
    events: list[EventSpec] = msgspec.field(default_factory=list)
    expect: list[Expectation] = msgspec.field(default_factory=list)
    start: str | None = None
    until: str | None = None
    only: list[str] | None = None
    """The segments whose changes are compared; by default those named in ``expect``."""
    description: str = ""


class _FileSpec(StrictFile):
    case: list[dict[str, Any]] = msgspec.field(default_factory=list)


_STRUCT_AT = {"$.events": EventSpec, "$.expect": Expectation}


@dataclass(frozen=True)
class Broken:
    """A case that could not be decoded: its name (or ``case N``) and what was wrong."""

    name: str
    message: str


@dataclass
class CaseFile:
    path: Path
    cases: list[Case | Broken] = field(default_factory=list)
    error: str | None = None
    """Set when the file as a whole could not be read; it then has no cases."""


@dataclass(frozen=True)
class Outcome:
    file: str
    case: str
    """The case's name; empty when the file as a whole failed."""
    passed: bool
    detail: str = ""
    """Why it failed: the problems, or the expected/actual diff."""

    @property
    def title(self) -> str:
        return f"{self.file}: {self.case}" if self.case else self.file

    def render(self) -> str:
        head = f"{'ok' if self.passed else 'FAILED':<6}  {self.title}"
        if not self.detail:
            return head
        return head + "\n" + "\n".join(f"        {line}".rstrip() for line in self.detail.splitlines())


# --- reading test files ---------------------------------------------------------------------


def discover(rules_dir: str | Path) -> list[CaseFile]:
    """Every ``<rules_dir>/tests/*.toml``, in name order, decoded."""
    return [load_file(path) for path in sorted((Path(rules_dir) / TESTS_DIR).glob("*.toml"))]


def load_file(path: Path) -> CaseFile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return CaseFile(path, error=f"cannot read: {exc}")
    try:
        data = _plain(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        return CaseFile(path, error=f"not valid TOML: {exc}")
    try:
        spec = msgspec.convert(data, _FileSpec)
    except msgspec.ValidationError as exc:
        return CaseFile(path, error=_explain(exc, _FileSpec))
    if not spec.case:
        return CaseFile(path, error="no cases: add one or more [[case]] tables with name, events and expect")
    file = CaseFile(path)
    names: set[str] = set()
    for number, raw in enumerate(spec.case, start=1):
        name = raw.get("name")
        label = name if isinstance(name, str) and name else f"case {number}"
        try:
            case = msgspec.convert(raw, Case)
        except msgspec.ValidationError as exc:
            file.cases.append(Broken(label, _explain(exc, Case)))
            continue
        if case.name in names:
            file.cases.append(Broken(label, "another case in this file has the same name; give each case "
                                     "its own, the report tells them apart by name"))
            continue
        names.add(case.name)
        file.cases.append(case)
    return file


def _plain(value: Any) -> Any:
    """TOML's own date-times (``start = 2026-03-01T10:00:00Z``, unquoted) as ISO strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def _explain(exc: msgspec.ValidationError, root: type[msgspec.Struct]) -> str:
    """msgspec's message (with its path), and for a misspelt key the key it was likely meant to be."""
    message = str(exc)
    unknown = re.match(r"Object contains unknown field `(\w+)`(?: - at `([^`]*)`)?", message)
    if unknown:
        at = re.sub(r"\[\d+\]$", "", unknown.group(2) or "$")
        struct = root if at == "$" else _STRUCT_AT.get(at, root)
        message += did_you_mean(unknown.group(1), struct.__struct_fields__)
    return message


# --- running ----------------------------------------------------------------------------------


Row = tuple[Instant, str, str, str]
"""A change as compared: at, customer_id, segment, change."""


def run_case(pack: RulePack, case: Case | Broken, *, file: str = "", number: int = 1) -> Outcome:
    """Run one case in a fresh Engine; the outcome says whether its expectations held, and why not."""
    if isinstance(case, Broken):
        return Outcome(file, case.name, False, case.message)
    problems: list[str] = []
    start = _time(case.start, None, "start", problems, offsets=False)
    events: list[tuple[Instant, bytes, str]] = []
    for index, spec in enumerate(case.events):
        where = f"events[{index}]"
        at = _time(spec.at, start, f"{where}.at", problems)
        if spec.type not in EVENT_TYPES:
            problems.append(f"`{where}.type`: unknown event type {spec.type!r}"
                            + did_you_mean(spec.type, EVENT_TYPES))
        if at is not None:
            events.append((at, _encode(spec, at, number, index), f"{where} ({spec.type} at {format_instant(at)})"))
    segments = {rule.name for rule in pack.rules}
    expected: list[Row] = []
    for index, expectation in enumerate(case.expect):
        at = _time(expectation.at, start, f"expect[{index}].at", problems)
        if expectation.segment not in segments:
            problems.append(f"`expect[{index}].segment`: no segment {expectation.segment!r} in the rules"
                            + did_you_mean(expectation.segment, segments))
        if at is not None:
            expected.append((at, expectation.customer_id, expectation.segment, expectation.change))
    for index, name in enumerate(case.only or ()):
        if name not in segments:
            problems.append(f"`only[{index}]`: no segment {name!r} in the rules" + did_you_mean(name, segments))
    relevant = set(case.only) if case.only else {e.segment for e in case.expect}
    if not relevant:
        problems.append("the case expects nothing and names no segment: list the segments that must not "
                        "change in `only`, like only = [\"cart_abandoner\"]")
    until = _time(case.until, start, "until", problems)
    last = max((at for at, _, _ in events), default=None)
    if until is not None and last is not None and until < last:
        problems.append(f"`until` {format_instant(until)} is before the last event ({format_instant(last)}); "
                        "the clock only moves forward")
    if problems:
        return Outcome(file, case.name, False, "\n".join(problems))

    engine = Engine(pack)
    changes: list[SegmentChange] = []
    rejected: list[str] = []
    for _, raw, label in events:
        result = engine.process_bytes(raw, where=label)
        if isinstance(result, BadEvent):
            rejected.append(f"{label} was rejected: {result.reason}")
        else:
            changes += result
    changes += engine.finish(until)
    actual = _ordered([(parse_instant(c.at), c.customer_id, c.segment, c.change)
                       for c in changes if c.segment in relevant])
    expected = _ordered(expected)
    if actual == expected and not rejected:
        return Outcome(file, case.name, True)
    lines = list(rejected)
    if actual != expected:
        lines.append(f"changes of {', '.join(sorted(relevant))}:  - expected  + actual")
        lines += diff(expected, actual, start)
    return Outcome(file, case.name, False, "\n".join(lines))


def run_file(pack: RulePack, file: CaseFile, *, shown: str | None = None) -> list[Outcome]:
    name = shown if shown is not None else str(file.path)
    if file.error is not None:
        return [Outcome(name, "", False, file.error)]
    return [run_case(pack, case, file=name, number=number) for number, case in enumerate(file.cases, start=1)]


def run_folder(pack: RulePack, rules_dir: str | Path) -> list[Outcome]:
    return [outcome for file in discover(rules_dir) for outcome in run_file(pack, file)]


def covered(files: Iterable[CaseFile]) -> set[str]:
    """Segments some case is about (named in its ``expect`` or ``only``)."""
    names: set[str] = set()
    for file in files:
        for case in file.cases:
            if isinstance(case, Case):
                names.update(e.segment for e in case.expect)
                names.update(case.only or ())
    return names


def command(rules_dir: str, out: TextIO | None = None) -> int:
    """``segmenter rules test [DIR]``: 0 when every case passes. Rule errors raise RuleError."""
    from streams.rules.load import load_pack

    out = out if out is not None else sys.stdout
    pack = load_pack(rules_dir)
    files = discover(rules_dir)
    if not files:
        print(f"no rule tests: {Path(rules_dir) / TESTS_DIR} holds no *.toml files "
              "(docs/rules.md, \"Write a rule test\", shows how)", file=out)
        return 1
    outcomes = [outcome for file in files for outcome in run_file(pack, file)]
    for outcome in outcomes:
        print(outcome.render(), file=out)
    untested = sorted({rule.name for rule in pack.rules} - covered(files))
    if untested:
        print(f"no case is about: {', '.join(untested)}", file=out)
    failed = sum(not outcome.passed for outcome in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed", file=out)
    return 0 if failed == 0 else 1


# --- times, events, diffs ---------------------------------------------------------------------


def parse_time(text: str, start: Instant | None) -> Instant:
    """An ISO 8601 time with an offset, or an offset from ``start``: ``+30m``, ``+1d12h``, ``-5m``."""
    offset = _OFFSET.match(text.strip())
    if offset is not None:
        if start is None:
            raise ValueError(f"{text!r} is an offset, but the case has no `start` to count from; "
                             "add start = \"2026-03-01T00:00:00Z\" to the case")
        amount = sum(int(n) * UNITS[unit] for n, unit in _OFFSET_PART.findall(offset.group(2)))
        return start + amount if offset.group(1) == "+" else start - amount
    try:
        return parse_instant(text)
    except ValueError as exc:
        if "UTC offset" in str(exc):
            raise
        raise ValueError(f"{text!r} is not a time; write an offset from `start` like '+30m' or '+1d12h', "
                         "or an ISO 8601 time like '2026-03-01T10:00:00Z'") from None


def format_offset(duration: int) -> str:
    """``+1d12h``, ``+30m``, ``-5m``, ``+0s``: the way offsets are written in test files."""
    sign = "-" if duration < 0 else "+"
    rest = abs(duration)
    parts = []
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest or not parts:
        parts.append(f"{rest / SECOND:g}s")
    return sign + "".join(parts)


def diff(expected: list[Row], actual: list[Row], start: Instant | None) -> list[str]:
    """Every row once: `` `` in both, ``-`` expected only, ``+`` actual only; columns aligned."""
    marked: list[tuple[str, Row]] = []
    matcher = difflib.SequenceMatcher(a=expected, b=actual, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            marked += [(" ", row) for row in expected[i1:i2]]
        else:  # in time order, the expected line first where both have one at the same time
            changed = [("-", row) for row in expected[i1:i2]] + [("+", row) for row in actual[j1:j2]]
            marked += sorted(changed, key=lambda item: item[1][:3])
    if not marked:
        return []
    cells = [_cells(row, start) for _, row in marked]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = [f"{mark} " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for (mark, _), row in zip(marked, cells, strict=True)]
    return [line.rstrip() for line in lines]


def _cells(row: Row, start: Instant | None) -> list[str]:
    at, customer, segment, change = row
    when = format_instant(at)
    if start is not None:
        when += f" ({format_offset(at - start)})"
    return [when, customer, segment, change]


def _ordered(rows: list[Row]) -> list[Row]:
    """By time, customer and segment; changes at the same instant keep their order."""
    return sorted(rows, key=lambda row: row[:3])


def _time(text: str | None, start: Instant | None, key: str, problems: list[str], *,
          offsets: bool = True) -> Instant | None:
    if text is None:
        return None
    if not offsets and _OFFSET.match(text.strip()):
        problems.append(f"`{key}`: {text!r} must be an ISO 8601 time like '2026-03-01T10:00:00Z'")
        return None
    try:
        return parse_time(text, start)
    except ValueError as exc:
        problems.append(f"`{key}`: {exc}")
        return None


def _encode(spec: EventSpec, at: Instant, case: int, index: int) -> bytes:
    body: dict[str, Any] = {
        "event_id": spec.event_id if spec.event_id is not None else _GENERATED_ID.format(case=case, event=index),
        "type": spec.type,
        "ts": format_instant(at),
    }
    for name in ("customer_id", "anonymous_id", "session_id", "device", "channel"):
        value = getattr(spec, name)
        if value is not None:
            body[name] = value
    if spec.properties is not None:
        body["properties"] = spec.properties
    return msgspec.json.encode(body)
