"""The rule expression language: a small, typed subset of Python syntax, compiled to Python.

    cart_items > 0 and now - last_cart_activity >= minutes(30)

The text is parsed with :mod:`ast` (so positions and syntax errors come for free), every node
is checked against a whitelist and the field schema, and the tree is turned into the source
of one Python function, compiled once, at load time (:mod:`streams.rules.compiled`). User text
is never evaluated: the source holds schema names, helpers and literals the compiler checked.

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
    both_present,
    check_room,
    comparison,
    conjunction,
    const,
    disjunction,
    env_of,
    field_expr,
    folded,
    fresh,
    min_next,
    reads_of,
    unless_null,
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
_COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], bool], str]] = {
    ast.Eq: ("==", operator.eq, "_eq"),
    ast.NotEq: ("!=", operator.ne, "_ne"),
    ast.Lt: ("<", operator.lt, "_lt"),
    ast.LtE: ("<=", operator.le, "_le"),
    ast.Gt: (">", operator.gt, "_gt"),
    ast.GtE: (">=", operator.ge, "_ge"),
}
_ARITH: dict[type[ast.operator], str] = {
    ast.Add: "{a} + {b}", ast.Sub: "{a} - {b}", ast.Mult: "{a} * {b}", ast.Div: "_div({a}, {b})",
    ast.Mod: "_mod({a}, {b})",
}


def compile_expression(text: str, scope: Scope, want: str) -> Expr:
    """Compile ``text`` to an :class:`Expr` of type ``want``, or raise :class:`ExprError`.

    Positions in the error are 1-based line and column within ``text``.
    """
    too_deep = ExprError(Kind.NOT_ALLOWED, "the expression is nested too deeply")
    try:
        # Parenthesised so an expression may span lines, as TOML multi-line strings do.
        tree = ast.parse(f"({text}\n)", mode="eval")
    except SyntaxError as exc:
        error = ExprError(Kind.SYNTAX, f"syntax error: {exc.msg}")
        error.line = exc.lineno or 1
        error.col = (exc.offset or 1) - 1
        raise _shift(error) from None
    except (RecursionError, MemoryError):
        raise _shift(too_deep) from None
    try:
        expr = _Compiler(scope).visit(tree.body)
    except ExprError as error:
        raise _shift(error) from None
    except RecursionError:  # the compiler follows the tree as deep as it goes
        raise _shift(too_deep) from None
    if expr.type != want and not (expr.type == NULL):
        raise _shift(ExprError(
            Kind.TYPE_MISMATCH, f"the expression is a {expr.type}; it must be a {want}", tree.body
        ))
    try:
        check_room(expr)
    except (SyntaxError, RecursionError, MemoryError):
        raise _shift(too_deep) from None
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
            return Expr(TIME, "s.clock", slope=1, base="0")
        return field_expr(spec, self.scope.timed.get(name))

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
            return const(round(arg.value * unit), DURATION)
        return Expr(DURATION, unless_null(arg.code, f"round({{v}} * {unit})"), arg.env, reads=arg.reads,
                    next=arg.next)

    # --- arithmetic --------------------------------------------------------------------

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Expr:
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self._need(operand, BOOL, node.operand, "`not`")
            if operand.const:
                return const(not operand.value, BOOL)
            return Expr(BOOL, f"(not {operand.code})", operand.env, reads=operand.reads, next=operand.next)
        if isinstance(node.op, ast.USub):
            if operand.type not in (NUMBER, DURATION) or operand.slope:
                raise ExprError(Kind.TYPE_MISMATCH, f"cannot negate a {operand.type}", node)
            if operand.const:
                return const(-operand.value, operand.type)
            return Expr(operand.type, unless_null(operand.code, "-{v}"), operand.env,
                        reads=operand.reads, next=operand.next)
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
        else:
            if left.slope or right.slope:
                raise ExprError(Kind.NOT_ALLOWED, "`now` can only be added to or subtracted from", node)
            slope = 0
        template = _ARITH[type(op)]
        if isinstance(op, ast.Mult | ast.Div) and DURATION in (left.type, right.type) and typ == DURATION:
            template = f"_round({template})"
        env = env_of(left, right)
        code = both_present(left.code, right.code, template)
        if left.const and right.const:
            return folded(Expr(typ, code, env))
        base = None
        if slope or left.slope or right.slope:
            lb = left.base if left.slope else left.code
            rb = right.base if right.slope else right.code
            assert lb is not None and rb is not None
            base = both_present(lb, rb, template)
        return Expr(typ, code, env, reads=reads_of(left, right), slope=slope, base=base,
                    next=min_next(left.next, right.next))

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
        symbol, pyop, helper = _COMPARE[type(op)]
        if left.type != right.type:
            raise ExprError(Kind.TYPE_MISMATCH, f"cannot compare a {left.type} with a {right.type}"
                            + hint(left.type, right.type), node)
        if symbol not in ("==", "!=") and left.type not in _ORDER:
            raise ExprError(Kind.TYPE_MISMATCH, f"`{symbol}` needs numbers, times or durations, "
                            f"not a {left.type}", node)
        if left.const and right.const:
            return const(pyop(left.value, right.value), BOOL)
        code, env = comparison(symbol, left, right), env_of(left, right)
        piece = min_next(left.next, right.next)
        slope = left.slope - right.slope
        if not slope:
            return Expr(BOOL, code, env, reads=reads_of(left, right), next=piece)
        lb = left.base if left.slope else left.code
        rb = right.base if right.slope else right.code
        assert lb is not None and rb is not None
        # The first instant after now at which ``slope*now + (lb - rb)  <op>  0`` changes.
        flip = both_present(lb, rb, f"_flip({helper}, {slope}, {{a}} - {{b}}, s.clock)")
        return Expr(BOOL, code, env, reads=reads_of(left, right), next=min_next(flip, piece))

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
        if other.const:
            return const((other.value is None) != negate, BOOL)
        return Expr(BOOL, f"({other.code} is {'not ' if negate else ''}None)", other.env,
                    reads=other.reads, next=other.next)

    def _membership(self, op: ast.cmpop, left: Expr, right: Expr, node: ast.AST) -> Expr:
        if not right.const or not isinstance(right.value, frozenset):
            raise ExprError(Kind.NOT_ALLOWED, "`in` takes a list of literals, like `device in [\"mobile\", \"tablet\"]`", node)
        item_type = right.type
        if item_type != left.type and item_type != NULL:
            raise ExprError(Kind.TYPE_MISMATCH, f"cannot look for a {left.type} in a list of {item_type}s", node)
        if left.slope:
            raise ExprError(Kind.NOT_ALLOWED, "`now` cannot be looked up in a list", node)
        v = fresh()
        test = "not in" if isinstance(op, ast.NotIn) else "in"
        return Expr(BOOL, f"(({v} := {left.code}) is not None and {v} {test} {right.code})",
                    env_of(left, right), reads=left.reads, next=left.next)

    def visit_List(self, node: ast.List | ast.Tuple | ast.Set) -> Expr:
        values = []
        types = set()
        for element in node.elts:
            item = self.visit(element)
            if not item.const or item.type not in (STRING, NUMBER, BOOL):
                raise ExprError(Kind.NOT_ALLOWED, "a list may only hold literal strings, numbers or booleans", element)
            values.append(item.value)
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
        if any(p.const and bool(p.value) == decisive for p in parts):
            return const(decisive, BOOL)
        parts = [p for p in parts if not p.const]
        if not parts:
            return const(is_and, BOOL)
        if len(parts) == 1:
            return parts[0]
        codes = [p.code for p in parts]
        code, env = conjunction(codes) if is_and else disjunction(codes), env_of(*parts)
        timed = [p for p in parts if p.timed]
        if not timed:
            return Expr(BOOL, code, env, reads=reads_of(*parts))
        next_all = min_next(*(p.next for p in timed))
        assert next_all is not None
        # While a part that time cannot change decides the result, time changes nothing.
        steady = [p.code if decisive else f"not {p.code}" for p in parts if not p.timed]
        nxt = f"(None if ({' or '.join(steady)}) else {next_all})" if steady else next_all
        return Expr(BOOL, code, env, reads=reads_of(*parts), next=nxt)

    @staticmethod
    def _need(expr: Expr, typ: str, node: ast.AST, where: str) -> None:
        if expr.type != typ and expr.type != NULL:
            raise ExprError(Kind.TYPE_MISMATCH, f"{where} needs a {typ}, not a {expr.type}", node)
