"""What a compiled rule expression is: its type, its value as generated Python source over the
customer's record (or, for a window's filters, the event), and how that value depends on
``now`` (its slope, its next change); and the pieces of source the compiler
(:mod:`streams.rules.expr`) builds expressions from.

Each rule becomes one flat Python function instead of a tree of closures: one call per rule
rather than one per node, which is most of what evaluating a pack costs. The source holds
only names from the field schema, helpers defined here, and literals written with ``repr``
of values the compiler checked (anything else goes in the expression's ``env``), so the
text of a rule file is never run as code.

The value of a time condition flips at one computable instant, which is why a compiled
expression carries ``nxt`` besides ``fn``: the engine's deadline comes from it.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from streams.model.windows import next_expiry, total
from streams.rules.fields import DURATION, NUMBER, STRING, TIME, Field
from streams.rules.problems import Kind

Fn = Callable[[Any], Any]
NextFn = Callable[[Any], int | None]

_fresh = itertools.count()


def fresh(prefix: str = "_t") -> str:
    """A name no other generated code uses (temporaries, and the ``env`` of an expression)."""
    return f"{prefix}{next(_fresh)}"


def flip_at(pyop: Callable[[Any, Any], bool], slope: int, g: Any, now: int) -> int | None:
    """The first instant after ``now`` at which ``slope*now + g  <op>  0`` changes."""
    current = pyop(slope * now + g, 0)
    root = -g * slope
    for t in (root, root + 1):
        if t > now and pyop(slope * t + g, 0) != current:
            return int(t)
    return None


def earliest(*times: int | None) -> int | None:
    best = None
    for t in times:
        if t is not None and (best is None or t < best):
            best = t
    return best


def divide(a: Any, b: Any) -> Any:
    return None if b == 0 else a / b


def modulo(a: Any, b: Any) -> Any:
    return None if b == 0 else a % b


def rounded(v: Any) -> Any:
    return None if v is None else round(v)


HELPERS: dict[str, Any] = {
    "_flip": flip_at, "_earliest": earliest, "_div": divide, "_mod": modulo, "_round": rounded,
    "_total": total, "_next_expiry": next_expiry,
    "_eq": operator.eq, "_ne": operator.ne, "_lt": operator.lt, "_le": operator.le,
    "_gt": operator.gt, "_ge": operator.ge,
}
"""What generated source may call besides the names in an expression's ``env``."""


ROOM = 4
"""Levels of nesting a condition's source must leave free: the engine inlines it that much
deeper (:mod:`streams.engine.judge`), and Python's parser has a fixed limit."""


def check_room(expr: Expr) -> None:
    """Compile ``expr`` (its value and next change) as deep as the engine will: a SyntaxError,
    RecursionError or MemoryError here is a rule nested too deeply, found at load time."""
    for code in (expr.code, expr.next):
        if code is not None:
            to_function("(" * ROOM + code + ")" * ROOM, expr.env)


def to_function(code: str, env: Mapping[str, Any]) -> Fn:
    """``lambda s: <code>``, run with the helpers and ``env`` as its globals."""
    return eval(compile(f"lambda s: {code}", "<rule>", "eval"), {**HELPERS, **env})


@dataclass(frozen=True)
class Expr:
    """A compiled (sub)expression. ``fn(s)`` gives its value; ``s.clock`` is ``now``."""

    type: str
    code: str
    """The value, as a Python expression over ``s``."""
    env: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """The names ``code`` (and ``base``, ``next``) use besides :data:`HELPERS`."""
    reads: frozenset[str] = frozenset()
    const: bool = False
    value: Any = None
    """A constant's value."""
    slope: int = 0
    """Coefficient of ``now`` in a time or duration value."""
    base: str | None = None
    """``value - slope * now``, as source, for a node with a slope."""
    next: str | None = None
    """Source of the next instant after now at which the value may change with no event (windows)."""

    @property
    def timed(self) -> bool:
        return self.slope != 0 or self.next is not None

    @cached_property
    def fn(self) -> Fn:
        return to_function(self.code, self.env)

    @cached_property
    def nxt(self) -> NextFn | None:
        return None if self.next is None else to_function(self.next, self.env)


def env_of(*exprs: Expr) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in exprs:
        out.update(e.env)
    return out


@dataclass
class Scope:
    """The names an expression may use."""

    fields: dict[str, Field]
    timed: dict[str, NextFn | str] = field(default_factory=dict)
    """Names whose value changes with time (windows), with their next change: a function of
    the record, or source over ``s``."""
    windows: frozenset[str] = frozenset()
    traits: frozenset[str] = frozenset()
    allow_now: bool = True
    what: str = "field"
    segments: dict[str, Expr] = field(default_factory=dict)
    """The conditions of the segments compiled so far, which ``in_segment`` may read."""
    keyed: frozenset[str] = frozenset()
    """Windows kept by a value: only a segment with ``for_each`` may read them."""
    segment_names: frozenset[str] = frozenset()
    """Every segment the pack defines (for a name misspelled, a suggestion)."""


class ExprError(Exception):
    def __init__(self, kind: Kind, message: str, node: ast.AST | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = getattr(node, "lineno", 1)
        self.col = getattr(node, "col_offset", 0)


def const(value: Any, typ: str) -> Expr:
    if value is None or isinstance(value, bool | str) or (
            isinstance(value, int | float) and math.isfinite(value)):
        return Expr(typ, f"({value!r})", const=True, value=value)
    name = fresh("_k")
    return Expr(typ, name, {name: value}, const=True, value=value)


def folded(expr: Expr) -> Expr:
    """A node whose parts are all constant, as the constant it evaluates to."""
    return const(expr.fn(None), expr.type)


def field_expr(spec: Field, nxt: NextFn | str | None) -> Expr:
    """A field's value (its ``code``, or a call of its getter) and its next change."""
    env: dict[str, Any] = {}
    code = spec.code
    if not code:
        name = fresh("_g")
        env[name], code = spec.get, f"{name}(s)"
    nxt_code = None
    if isinstance(nxt, str):
        nxt_code = nxt
    elif nxt is not None:
        name = fresh("_n")
        env[name], nxt_code = nxt, f"{name}(s)"
    return Expr(spec.type, code, env, reads=frozenset({spec.name}), next=nxt_code)


def min_next(*codes: str | None) -> str | None:
    present = [c for c in codes if c is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return f"_earliest({', '.join(present)})"


def reads_of(*exprs: Expr) -> frozenset[str]:
    out: frozenset[str] = frozenset()
    for e in exprs:
        out |= e.reads
    return out


def unless_null(code: str, then: str) -> str:
    """``then`` over ``v`` (the value of ``code``), or null when the value is null."""
    t = fresh()
    return f"(None if ({t} := {code}) is None else {then.format(v=t)})"


def both_present(left: str, right: str, then: str) -> str:
    """``then`` over ``a`` and ``b``, or null when either is null (``right`` is not evaluated
    when ``left`` is null)."""
    a, b = fresh(), fresh()
    return f"(None if ({a} := {left}) is None or ({b} := {right}) is None else {then.format(a=a, b=b)})"


def comparison(symbol: str, left: Expr, right: Expr) -> str:
    """``left <symbol> right``; false when either side is null."""
    a = fresh()
    if right.const:
        if right.value is None:
            return "False"
        return f"(({a} := {left.code}) is not None and {a} {symbol} {right.code})"
    b = fresh()
    return f"(({a} := {left.code}) is not None and ({b} := {right.code}) is not None and {a} {symbol} {b})"


def conjunction(codes: list[str]) -> str:
    return f"(True if ({' and '.join(codes)}) else False)"


def disjunction(codes: list[str]) -> str:
    return f"(True if ({' or '.join(codes)}) else False)"


def arith_type(op: ast.operator, a: str, b: str) -> str | None:
    if isinstance(op, ast.Add):
        table = {(NUMBER, NUMBER): NUMBER, (TIME, DURATION): TIME, (DURATION, TIME): TIME,
                 (DURATION, DURATION): DURATION, (STRING, STRING): STRING}
    elif isinstance(op, ast.Sub):
        table = {(NUMBER, NUMBER): NUMBER, (TIME, TIME): DURATION, (TIME, DURATION): TIME,
                 (DURATION, DURATION): DURATION}
    elif isinstance(op, ast.Mult):
        table = {(NUMBER, NUMBER): NUMBER, (DURATION, NUMBER): DURATION, (NUMBER, DURATION): DURATION}
    elif isinstance(op, ast.Div):
        table = {(NUMBER, NUMBER): NUMBER, (DURATION, NUMBER): DURATION, (DURATION, DURATION): NUMBER}
    elif isinstance(op, ast.Mod):
        table = {(NUMBER, NUMBER): NUMBER}
    else:
        return None
    return table.get((a, b))
