"""What a compiled rule expression is: its type, its value as a closure over the customer's
context, and how that value depends on ``now`` (its slope, its next change); and the closures
the compiler (:mod:`streams.rules.expr`) builds expressions from.

The value of a time condition flips at one computable instant, which is why a compiled
expression carries ``next`` besides ``fn``: the engine's deadline comes from it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.rules.fields import DURATION, NUMBER, STRING, TIME, Field
from streams.rules.problems import Kind

Fn = Callable[[Any], Any]
NextFn = Callable[[Any], int | None]


@dataclass(frozen=True)
class Expr:
    """A compiled (sub)expression. ``fn(ctx)`` gives its value; ``ctx.clock`` is ``now``."""

    type: str
    fn: Fn
    reads: frozenset[str] = frozenset()
    const: bool = False
    slope: int = 0
    """Coefficient of ``now`` in a time or duration value."""
    base: Fn | None = None
    """``value - slope * now``, for a node with a slope."""
    nxt: NextFn | None = None
    """Next instant after now at which the value may change with no event (windows)."""

    @property
    def timed(self) -> bool:
        return self.slope != 0 or self.nxt is not None


@dataclass
class Scope:
    """The names an expression may use."""

    fields: dict[str, Field]
    timed: dict[str, NextFn] = field(default_factory=dict)
    """Names whose value changes with time (windows), with their next-change function."""
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
    return Expr(typ, lambda _ctx: value, const=True)


def min_next(*fns: NextFn | None) -> NextFn | None:
    present = [f for f in fns if f is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def nxt(ctx: Any) -> int | None:
        best = None
        for f in present:
            t = f(ctx)
            if t is not None and (best is None or t < best):
                best = t
        return best

    return nxt


def reads_of(*exprs: Expr) -> frozenset[str]:
    out: frozenset[str] = frozenset()
    for e in exprs:
        out |= e.reads
    return out


def comparison(pyop: Callable[[Any, Any], bool], left: Expr, right: Expr) -> Fn:
    lf, rf = left.fn, right.fn
    if right.const:
        c = rf(None)
        if c is None:
            return lambda _ctx: False

        def against_constant(ctx: Any) -> bool:
            a = lf(ctx)
            return a is not None and pyop(a, c)

        return against_constant

    def value(ctx: Any) -> bool:
        a = lf(ctx)
        if a is None:
            return False
        b = rf(ctx)
        return b is not None and pyop(a, b)

    return value


def conjunction(fns: tuple[Fn, ...]) -> Fn:
    if len(fns) == 2:
        f1, f2 = fns
        return lambda ctx: bool(f1(ctx) and f2(ctx))
    if len(fns) == 3:
        f1, f2, f3 = fns
        return lambda ctx: bool(f1(ctx) and f2(ctx) and f3(ctx))
    return lambda ctx: all(f(ctx) for f in fns)


def disjunction(fns: tuple[Fn, ...]) -> Fn:
    if len(fns) == 2:
        f1, f2 = fns
        return lambda ctx: bool(f1(ctx) or f2(ctx))
    if len(fns) == 3:
        f1, f2, f3 = fns
        return lambda ctx: bool(f1(ctx) or f2(ctx) or f3(ctx))
    return lambda ctx: any(f(ctx) for f in fns)


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


def divide(a: Any, b: Any) -> Any:
    return None if b == 0 else a / b


def modulo(a: Any, b: Any) -> Any:
    return None if b == 0 else a % b


def rounded(pyop: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def rounded(a: Any, b: Any) -> Any:
        v = pyop(a, b)
        return None if v is None else round(v)

    return rounded
