"""The rule expression language: a small, typed subset of Python syntax, compiled to closures.

    cart_items > 0 and now - last_cart_activity >= minutes(30)

The text is parsed with :mod:`ast` (so positions and syntax errors come for free), every node
is checked against a whitelist and the field schema, and the tree is turned into nested Python
closures once, at load time. User text is never evaluated.

Besides the value, each compiled node knows how it depends on ``now``. A time or duration has
a *slope* (``now`` is +1, ``now - last_order_at`` is +1, ``last_seen - now`` is -1), so a
comparison against ``now`` flips at one computable instant; a window value is piecewise
constant and changes when its oldest entry expires. From these the compiler derives, for the
whole condition, the next instant at which time alone could change its value: the deadline
the engine puts in its timer index. Anything else that mixes ``now`` in (``now * 2``) is a
load-time error, so every rule that depends on time has an exact deadline.

Null (a field never set) propagates through arithmetic; a comparison with null is false, and
``x == null`` / ``x is null`` test for it.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

from streams.model.clock import UNITS
from streams.rules.compiled import (
    Expr,
    ExprError,
    Scope,
    arith_type,
    comparison,
    conjunction,
    const,
    disjunction,
    divide,
    min_next,
    modulo,
    reads_of,
    rounded,
)
from streams.rules.compose import SEGMENT_FUNCTIONS, segment_call
from streams.rules.fields import BOOL, DURATION, NULL, NUMBER, STRING, TIME
from streams.rules.problems import Kind, describe, did_you_mean, example, hint, verb

DURATION_FUNCTIONS = {
    "seconds": UNITS["s"], "minutes": UNITS["m"], "hours": UNITS["h"], "days": UNITS["d"],
    "weeks": UNITS["w"],
}
LITERAL_NAMES = {"true": True, "false": False, "null": None}

_ORDER = (NUMBER, TIME, DURATION)
_COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], bool]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
}


def compile_expression(text: str, scope: Scope, want: str) -> Expr:
    """Compile ``text`` to an :class:`Expr` of type ``want``, or raise :class:`ExprError`.

    Positions in the error are 1-based line and column within ``text``.
    """
    try:
        # Parenthesised so an expression may span lines, as TOML multi-line strings do.
        tree = ast.parse(f"({text}\n)", mode="eval")
    except SyntaxError as exc:
        error = ExprError(Kind.SYNTAX, f"syntax error: {exc.msg}")
        error.line = exc.lineno or 1
        error.col = (exc.offset or 1) - 1
        raise _shift(error) from None
    try:
        expr = _Compiler(scope).visit(tree.body)
    except ExprError as error:
        raise _shift(error) from None
    if expr.type != want and not (expr.type == NULL):
        raise _shift(ExprError(
            Kind.TYPE_MISMATCH, f"the expression is a {expr.type}; it must be a {want}", tree.body
        ))
    return expr


def _shift(error: ExprError) -> ExprError:
    """Undo the opening parenthesis on the first line, and make the column 1-based."""
    if error.line == 1:
        error.col -= 1
    error.col = max(error.col, 0) + 1
    return error


def _type_of_literal(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    raise TypeError(value)


class _Compiler:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def visit(self, node: ast.AST) -> Expr:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise ExprError(Kind.NOT_ALLOWED, f"{describe(node)} is not part of the rule language; "
                            "use names, literals, and/or/not, comparisons, in [...], + - * /, "
                            "the functions seconds() minutes() hours() days() weeks(), and "
                            "in_segment() time_in_segment()", node)
        result: Expr = method(node)
        return result

    # --- leaves ------------------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> Expr:
        try:
            return const(node.value, _type_of_literal(node.value))
        except TypeError:
            raise ExprError(Kind.NOT_ALLOWED, f"literal {node.value!r} is not allowed", node) from None

    def visit_Name(self, node: ast.Name) -> Expr:
        if node.id in LITERAL_NAMES:
            value = LITERAL_NAMES[node.id]
            return const(value, _type_of_literal(value))
        if node.id == "now" and not self.scope.allow_now:
            raise ExprError(Kind.NOT_ALLOWED, "`now` cannot be used here: this expression is about "
                            "one event, not the customer's state over time", node)
        if node.id in ("windows", "traits", "consent"):
            raise ExprError(Kind.UNKNOWN_FIELD, f"`{node.id}` needs a name after it, like "
                            f"`{node.id}.{example(node.id)}`", node)
        return self._field(node.id, node)

    def visit_Attribute(self, node: ast.Attribute) -> Expr:
        if not isinstance(node.value, ast.Name):
            raise ExprError(Kind.NOT_ALLOWED, "only one level of `.` is allowed, like `windows.spend_30d`", node)
        root, name = node.value.id, node.attr
        dotted = f"{root}.{name}"
        if root not in ("windows", "traits", "consent"):
            raise ExprError(Kind.NOT_ALLOWED, f"`{root}` has no parts; only `windows.`, `traits.` and "
                            "`consent.` take a dot", node)
        if root == "windows" and dotted not in self.scope.fields and name in self.scope.keyed:
            raise ExprError(Kind.NOT_ALLOWED, f"window `{name}` is kept per value (`by`): read it in a "
                            "segment with for_each, which reads it for each of its values", node)
        if root == "windows" and dotted not in self.scope.fields:
            raise ExprError(Kind.UNKNOWN_WINDOW, f"window `{name}` is not declared; declare it under "
                            f"[windows.{name}] in pack.toml" + did_you_mean(name, self.scope.windows), node)
        if root == "traits" and dotted not in self.scope.fields:
            raise ExprError(Kind.UNKNOWN_TRAIT, f"trait `{name}` is not declared; declare it with its "
                            f"type under [traits] in pack.toml" + did_you_mean(name, self.scope.traits), node)
        return self._field(dotted, node)

    def _field(self, name: str, node: ast.AST) -> Expr:
        spec = self.scope.fields.get(name)
        if spec is None:
            choices = [n for n in self.scope.fields if not n.startswith(("windows.", "traits."))]
            hint = "; RFM needs an [rfm] table in pack.toml" if name.startswith("rfm_") else did_you_mean(name, choices)
            raise ExprError(Kind.UNKNOWN_FIELD, f"unknown {self.scope.what} `{name}`" + hint, node)
        if name == "now":
            return Expr(TIME, spec.get, slope=1, base=lambda _ctx: 0)
        return Expr(spec.type, spec.get, reads=frozenset({spec.name}), nxt=self.scope.timed.get(name))

    # --- functions ---------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name):
            raise ExprError(Kind.NOT_ALLOWED, "only the built-in functions can be called", node)
        name = node.func.id
        if name in SEGMENT_FUNCTIONS:
            return segment_call(name, node, self.scope)
        if name not in DURATION_FUNCTIONS:
            raise ExprError(Kind.UNKNOWN_FUNCTION, f"unknown function `{name}`"
                            + did_you_mean(name, [*DURATION_FUNCTIONS, *SEGMENT_FUNCTIONS]), node.func)
        if node.keywords or len(node.args) != 1:
            raise ExprError(Kind.NOT_ALLOWED, f"`{name}()` takes one number, like `{name}(30)`", node)
        arg = self.visit(node.args[0])
        if arg.type != NUMBER or arg.slope:
            raise ExprError(Kind.TYPE_MISMATCH, f"`{name}()` takes a number, not a {arg.type}", node.args[0])
        unit = DURATION_FUNCTIONS[name]
        if arg.const:
            return const(round(arg.fn(None) * unit), DURATION)
        inner = arg.fn

        def duration(ctx: Any) -> int | None:
            v = inner(ctx)
            return None if v is None else round(v * unit)

        return Expr(DURATION, duration, reads=arg.reads, nxt=arg.nxt)

    # --- arithmetic --------------------------------------------------------------------

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Expr:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self._need(operand, BOOL, node.operand, "`not`")
            inner = operand.fn
            if operand.const:
                return const(not inner(None), BOOL)
            return Expr(BOOL, lambda ctx: not inner(ctx), reads=operand.reads, nxt=operand.nxt)
        if isinstance(node.op, ast.USub):
            if operand.type not in (NUMBER, DURATION) or operand.slope:
                raise ExprError(Kind.TYPE_MISMATCH, f"cannot negate a {operand.type}", node)
            inner = operand.fn
            if operand.const:
                return const(-inner(None), operand.type)
            return Expr(operand.type, lambda ctx: None if (v := inner(ctx)) is None else -v,
                        reads=operand.reads, nxt=operand.nxt)
        raise ExprError(Kind.NOT_ALLOWED, f"unary {describe(node.op)} is not allowed", node)

    def visit_BinOp(self, node: ast.BinOp) -> Expr:
        op = node.op
        if not isinstance(op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Mod):
            raise ExprError(Kind.NOT_ALLOWED, f"{describe(op)} is not part of the rule language", node)
        left, right = self.visit(node.left), self.visit(node.right)
        typ = arith_type(op, left.type, right.type)
        if typ is None:
            raise ExprError(Kind.TYPE_MISMATCH, f"cannot {verb(op)} a {left.type} and a {right.type}"
                            + hint(left.type, right.type), node)
        if isinstance(op, ast.Add | ast.Sub):
            sign = 1 if isinstance(op, ast.Add) else -1
            slope = left.slope + sign * right.slope
            if abs(slope) > 1:
                raise ExprError(Kind.NOT_ALLOWED, "`now` may appear once on each side of a comparison", node)
            pyop = operator.add if sign == 1 else operator.sub
        else:
            if left.slope or right.slope:
                raise ExprError(Kind.NOT_ALLOWED, "`now` can only be added to or subtracted from", node)
            slope = 0
            pyop = {ast.Mult: operator.mul, ast.Div: divide, ast.Mod: modulo}[type(op)]
            if isinstance(op, ast.Mult | ast.Div) and DURATION in (left.type, right.type) and typ == DURATION:
                pyop = rounded(pyop)
        lf, rf = left.fn, right.fn
        if left.const and right.const:
            return const(pyop(lf(None), rf(None)), typ)

        def value(ctx: Any) -> Any:
            a = lf(ctx)
            if a is None:
                return None
            b = rf(ctx)
            return None if b is None else pyop(a, b)

        base = None
        if slope or left.slope or right.slope:
            lb = left.base if left.slope else lf
            rb = right.base if right.slope else rf
            assert lb is not None and rb is not None

            def base(ctx: Any) -> Any:
                a = lb(ctx)
                if a is None:
                    return None
                b = rb(ctx)
                return None if b is None else pyop(a, b)

        return Expr(typ, value, reads=reads_of(left, right), slope=slope, base=base,
                    nxt=min_next(left.nxt, right.nxt))

    # --- comparisons -------------------------------------------------------------------

    def visit_Compare(self, node: ast.Compare) -> Expr:
        operands = [node.left, *node.comparators]
        parts = []
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.visit(right_node)
            parts.append(self._compare(op, left, right, node if len(operands) == 2 else right_node))
            left = right
        if len(parts) == 1:
            return parts[0]
        return self._bool_and(parts)

    def _compare(self, op: ast.cmpop, left: Expr, right: Expr, node: ast.AST) -> Expr:
        if isinstance(op, ast.In | ast.NotIn):
            return self._membership(op, left, right, node)
        if isinstance(op, ast.Is | ast.IsNot) or NULL in (left.type, right.type):
            return self._null_test(op, left, right, node)
        symbol, pyop = _COMPARE[type(op)]
        if left.type != right.type:
            raise ExprError(Kind.TYPE_MISMATCH, f"cannot compare a {left.type} with a {right.type}"
                            + hint(left.type, right.type), node)
        if symbol not in ("==", "!=") and left.type not in _ORDER:
            raise ExprError(Kind.TYPE_MISMATCH, f"`{symbol}` needs numbers, times or durations, "
                            f"not a {left.type}", node)
        lf, rf = left.fn, right.fn
        if left.const and right.const:
            return const(pyop(lf(None), rf(None)), BOOL)

        value = comparison(pyop, left, right)
        piece = min_next(left.nxt, right.nxt)
        slope = left.slope - right.slope
        if not slope:
            return Expr(BOOL, value, reads=reads_of(left, right), nxt=piece)
        lb = left.base if left.slope else lf
        rb = right.base if right.slope else rf
        assert lb is not None and rb is not None

        def flip(ctx: Any) -> int | None:
            """The first instant after now at which ``slope*now + g  <op>  0`` changes."""
            a = lb(ctx)
            b = rb(ctx) if a is not None else None
            if a is None or b is None:
                return None
            g = a - b
            now = ctx.clock
            current = pyop(slope * now + g, 0)
            root = -g * slope
            for t in (root, root + 1):
                if t > now and pyop(slope * t + g, 0) != current:
                    return int(t)
            return None

        return Expr(BOOL, value, reads=reads_of(left, right), nxt=min_next(flip, piece))

    def _null_test(self, op: ast.cmpop, left: Expr, right: Expr, node: ast.AST) -> Expr:
        if isinstance(op, ast.Eq | ast.Is):
            negate = False
        elif isinstance(op, ast.NotEq | ast.IsNot):
            negate = True
        else:
            raise ExprError(Kind.TYPE_MISMATCH, "null can only be tested with `==`, `!=`, `is` or `is not`", node)
        if NULL not in (left.type, right.type):
            raise ExprError(Kind.NOT_ALLOWED, "`is` only tests for null: write `x is null`", node)
        other = right if left.type == NULL else left
        if other.slope:
            raise ExprError(Kind.NOT_ALLOWED, "`now` is never null", node)
        inner = other.fn
        if other.const:
            return const((inner(None) is None) != negate, BOOL)
        return Expr(BOOL, lambda ctx: (inner(ctx) is None) != negate, reads=other.reads, nxt=other.nxt)

    def _membership(self, op: ast.cmpop, left: Expr, right: Expr, node: ast.AST) -> Expr:
        if not right.const or not isinstance(right.fn(None), frozenset):
            raise ExprError(Kind.NOT_ALLOWED, "`in` takes a list of literals, like `device in [\"mobile\", \"tablet\"]`", node)
        items: frozenset[Any] = right.fn(None)
        item_type = right.type
        if item_type != left.type and item_type != NULL:
            raise ExprError(Kind.TYPE_MISMATCH, f"cannot look for a {left.type} in a list of {item_type}s", node)
        negate = isinstance(op, ast.NotIn)
        inner = left.fn
        if left.slope:
            raise ExprError(Kind.NOT_ALLOWED, "`now` cannot be looked up in a list", node)

        def value(ctx: Any) -> bool:
            v = inner(ctx)
            return v is not None and ((v in items) != negate)

        return Expr(BOOL, value, reads=left.reads, nxt=left.nxt)

    def visit_List(self, node: ast.List | ast.Tuple | ast.Set) -> Expr:
        values = []
        types = set()
        for element in node.elts:
            item = self.visit(element)
            if not item.const or item.type not in (STRING, NUMBER, BOOL):
                raise ExprError(Kind.NOT_ALLOWED, "a list may only hold literal strings, numbers or booleans", element)
            values.append(item.fn(None))
            types.add(item.type)
        if len(types) > 1:
            raise ExprError(Kind.TYPE_MISMATCH, f"a list mixes {' and '.join(sorted(types))}s", node)
        return const(frozenset(values), types.pop() if types else NULL)

    visit_Tuple = visit_List
    visit_Set = visit_List

    # --- boolean logic -----------------------------------------------------------------

    def visit_BoolOp(self, node: ast.BoolOp) -> Expr:
        parts = [self.visit(v) for v in node.values]
        for part, value_node in zip(parts, node.values, strict=True):
            self._need(part, BOOL, value_node, "`and` / `or`")
        return self._bool_and(parts) if isinstance(node.op, ast.And) else self._bool_or(parts)

    def _bool_and(self, parts: list[Expr]) -> Expr:
        return self._bool(parts, is_and=True)

    def _bool_or(self, parts: list[Expr]) -> Expr:
        return self._bool(parts, is_and=False)

    def _bool(self, parts: list[Expr], *, is_and: bool) -> Expr:
        # A constant that decides the result folds the whole expression away.
        decisive = not is_and  # `or` is decided by a True, `and` by a False
        if any(p.const and bool(p.fn(None)) == decisive for p in parts):
            return const(decisive, BOOL)
        parts = [p for p in parts if not p.const]
        if not parts:
            return const(is_and, BOOL)
        if len(parts) == 1:
            return parts[0]
        value = conjunction(tuple(p.fn for p in parts)) if is_and else disjunction(tuple(p.fn for p in parts))
        timed = [p for p in parts if p.timed]
        if not timed:
            return Expr(BOOL, value, reads=reads_of(*parts))
        steady = tuple(p.fn for p in parts if not p.timed)
        next_all = min_next(*(p.nxt for p in timed))
        assert next_all is not None

        def nxt(ctx: Any) -> int | None:
            # While a part that time cannot change decides the result, time changes nothing.
            for f in steady:
                if bool(f(ctx)) == decisive:
                    return None
            return next_all(ctx)

        return Expr(BOOL, value, reads=reads_of(*parts), nxt=nxt)

    @staticmethod
    def _need(expr: Expr, typ: str, node: ast.AST, where: str) -> None:
        if expr.type != typ and expr.type != NULL:
            raise ExprError(Kind.TYPE_MISMATCH, f"{where} needs a {typ}, not a {expr.type}", node)
