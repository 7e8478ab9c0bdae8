"""Segments of segments: the order rules are judged in, so that a rule reading another segment
(``in_segment``, ``time_in_segment``) is judged after it, and the cycles that make an order
impossible."""

from __future__ import annotations

import ast
from collections.abc import Mapping

from streams.rules.compiled import Expr, ExprError, Scope, unless_null
from streams.rules.fields import BOOL, DURATION
from streams.rules.problems import Kind, did_you_mean


def judging_order(reads: Mapping[str, set[str]]) -> tuple[list[str], list[list[str]]]:
    """The segments (the keys of ``reads``, each with the segments it reads), each after those
    it reads and otherwise in the order given; and every cycle, as its path (``a, b, a``).
    Segments on a cycle are left out of the order."""
    order: list[str] = []
    cycles: list[list[str]] = []
    done: set[str] = set()
    stuck: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = [*path[path.index(name):], name]
            cycles.append(cycle)
            stuck.update(cycle)
            return
        path.append(name)
        for other in sorted(reads[name]):
            if other in reads:
                visit(other)
        path.pop()
        done.add(name)
        if name not in stuck:
            order.append(name)

    for name in reads:
        visit(name)
    return order, cycles


SEGMENT_FUNCTIONS = ("in_segment", "time_in_segment")


def segment_argument(node: ast.AST) -> str | None:
    """The segment a call of a segment function names, if it is one string literal."""
    if (isinstance(node, ast.Call) and not node.keywords and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def segments_read(text: str) -> set[str]:
    """The segments an expression reads with ``in_segment`` or ``time_in_segment`` (none if it
    does not parse: compiling it says why)."""
    try:
        tree = ast.parse(f"({text}\n)", mode="eval")
    except (SyntaxError, RecursionError, MemoryError):
        return set()
    return {name for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in SEGMENT_FUNCTIONS and (name := segment_argument(node)) is not None}


def segment_call(function: str, node: ast.Call, scope: Scope) -> Expr:
    """``in_segment("x")``: whether the customer is in segment x; ``time_in_segment("x")``:
    how long since they entered it (null when not in it). Either reads what x reads and
    changes when x does, so the rule is judged after x, at x's deadlines too."""
    name = segment_argument(node)
    if name is None:
        raise ExprError(Kind.NOT_ALLOWED, f"`{function}()` takes a segment's name, like "
                        f"`{function}(\"cart_abandoner\")`", node)
    dep = scope.segments.get(name)
    if dep is None and name in scope.segment_names:
        raise ExprError(Kind.UNKNOWN_SEGMENT, f"segment {name!r} cannot be read: it has problems "
                        "of its own, listed with it", node.args[0])
    if dep is None:
        raise ExprError(Kind.UNKNOWN_SEGMENT, f"unknown segment {name!r}"
                        + did_you_mean(name, scope.segment_names), node.args[0])
    if function == "in_segment":
        return Expr(BOOL, f"(s.members.get({name!r}, 0) % 2 == 1)", dep.env, reads=dep.reads, next=dep.next)
    since = f"s.since.get({name!r})"
    return Expr(DURATION, unless_null(since, "s.clock - {v}"), dep.env, reads=dep.reads, slope=1,
                base=unless_null(since, "-{v}"), next=dep.next)
