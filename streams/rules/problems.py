"""What can be wrong with a rule file, reported all at once, each with its kind and place.

Tests assert on :class:`Kind`, never on wording, so messages are free to improve.
"""

from __future__ import annotations

import ast
import difflib
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from streams.errors import SegmenterError
from streams.rules.fields import DURATION, NUMBER, STRING, TIME


class Kind(enum.Enum):
    BAD_FILE = "bad-file"
    """Not valid TOML, or a key or value the rule format does not have."""
    SYNTAX = "syntax"
    UNKNOWN_FIELD = "unknown-field"
    UNKNOWN_WINDOW = "unknown-window"
    UNKNOWN_TRAIT = "unknown-trait"
    UNKNOWN_FUNCTION = "unknown-function"
    UNKNOWN_EVENT_TYPE = "unknown-event-type"
    UNKNOWN_SEGMENT = "unknown-segment"
    CYCLE = "cycle"
    TYPE_MISMATCH = "type-mismatch"
    NOT_ALLOWED = "not-allowed"
    """Valid Python syntax that the rule language leaves out (a lambda, a call on a field, ...)."""
    DUPLICATE = "duplicate"
    BAD_VALUE = "bad-value"


@dataclass(frozen=True)
class Problem:
    kind: Kind
    file: str
    message: str
    rule: str | None = None
    key: str | None = None
    """The key of the rule file holding the expression: ``when``, ``where``, ``value``..."""
    line: int | None = None
    """Line in the file, 1-based, when known."""
    col: int | None = None
    """Column in the expression, 1-based."""
    source: str | None = None
    """The expression's line, shown with a caret under ``col``."""

    def __str__(self) -> str:
        place = self.file
        if self.line is not None:
            place += f":{self.line}"
        head = f"{place}: "
        if self.rule:
            head += f"rule {self.rule!r}: "
        if self.key:
            head += f"`{self.key}`"
            if self.col is not None:
                head += f" column {self.col}"
            head += ": "
        text = f"{head}{self.message} [{self.kind.value}]"
        if self.source is not None and self.col is not None:
            text += f"\n    {self.source}\n    {' ' * (self.col - 1)}^"
        return text


class RuleError(SegmenterError):
    """Rule files that cannot be loaded; ``problems`` lists every one found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} in the rules:"]
        lines += [str(problem) for problem in self.problems]
        super().__init__("\n".join(lines))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


# --- what an expression's problem says ------------------------------------------------------


def hint(a: str, b: str) -> str:
    if {a, b} == {DURATION, NUMBER}:
        return "; write a duration with a unit, like minutes(30) or days(90)"
    if {a, b} == {TIME, DURATION}:
        return "; to measure time since a moment, write `now - <time> >= <duration>`"
    if {a, b} == {TIME, NUMBER}:
        return "; times compare with times: `now - <time>` is a duration"
    if STRING in (a, b) and NUMBER in (a, b):
        return "; quote a string literal, or drop the quotes around a number"
    return ""


def verb(op: ast.operator) -> str:
    return {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide",
            ast.Mod: "take the remainder of"}.get(type(op), "combine")


def describe(node: ast.AST) -> str:
    names = {"Lambda": "a lambda", "Subscript": "indexing with [...]", "IfExp": "`x if c else y`",
             "Dict": "a dict", "ListComp": "a comprehension", "GeneratorExp": "a generator",
             "JoinedStr": "an f-string", "NamedExpr": "`:=`", "Starred": "`*`", "Await": "`await`",
             "BitAnd": "`&` (write `and`)", "BitOr": "`|` (write `or`)", "Invert": "`~` (write `not`)",
             "Pow": "`**`", "FloorDiv": "`//`"}
    name = type(node).__name__
    return names.get(name, f"`{name}`")


def example(root: str) -> str:
    return {"windows": "pricing_views_7d", "traits": "country", "consent": "sms"}[root]
