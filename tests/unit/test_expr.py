"""The rule expression language: values, null, types, errors, and the deadline it derives."""

from __future__ import annotations

import pytest

from streams.model.clock import DAY, MINUTE
from streams.model.state import CustomerState
from streams.rules.compiled import ExprError, Scope
from streams.rules.expr import compile_expression
from streams.rules.fields import STATE_FIELDS
from streams.rules.problems import Kind

SCOPE = Scope(dict(STATE_FIELDS))


def compile_bool(text: str):  # type: ignore[no-untyped-def]
    return compile_expression(text, SCOPE, "bool")


def error_of(text: str) -> ExprError:
    with pytest.raises(ExprError) as info:
        compile_bool(text)
    return info.value


def test_values_follow_the_state() -> None:
    expr = compile_bool('orders >= 2 and device in ["mobile", "tablet"] and not consent.sms')
    state = CustomerState(orders=2, device="tablet")
    assert expr.fn(state) is True
    state.consent_sms = True
    assert expr.fn(state) is False
    assert expr.reads == {"orders", "device", "consent.sms"}


def test_null_compares_false_and_can_be_tested() -> None:
    state = CustomerState()
    assert compile_bool("last_order_at < now").fn(state) is False
    assert compile_bool("last_order_at is null").fn(state) is True
    assert compile_bool("last_order_at != null").fn(state) is False
    assert compile_bool("now - last_order_at >= days(1)").fn(state) is False


def test_lowercase_literals_and_chained_comparisons() -> None:
    state = CustomerState(orders=3)
    assert compile_bool("1 < orders < 5 and true").fn(state) is True
    assert compile_bool("orders == 3 or null").fn(state) is True


def test_division_by_zero_is_null_not_a_crash() -> None:
    assert compile_bool("lifetime_spend / orders > 1").fn(CustomerState()) is False


def test_constant_parts_are_folded() -> None:
    assert compile_bool("false and orders > 1").const
    assert compile_bool("minutes(30) == seconds(1800)").fn(None) is True


@pytest.mark.parametrize(
    ("text", "kind", "col"),
    [
        ("orderz > 1", Kind.UNKNOWN_FIELD, 1),
        ("orders > 1 and cart_itmes > 0", Kind.UNKNOWN_FIELD, 16),
        ("now - last_order_at >= 90", Kind.TYPE_MISMATCH, 1),
        ('orders == "2"', Kind.TYPE_MISMATCH, 1),
        ("windows.nope > 1", Kind.UNKNOWN_WINDOW, 1),
        ("traits.country == 'NO'", Kind.UNKNOWN_TRAIT, 1),
        ("dayz(3) < now - last_seen", Kind.UNKNOWN_FUNCTION, 1),
        ("orders > 1 and", Kind.SYNTAX, None),
        ("(lambda: 1)()", Kind.NOT_ALLOWED, None),
        ("(now - last_seen) * 2 > days(1)", Kind.NOT_ALLOWED, 1),
        ("now * 2 > now", Kind.TYPE_MISMATCH, 1),
        ("orders + 1", Kind.TYPE_MISMATCH, 1),
        ("orders > 1 & orders < 3", Kind.NOT_ALLOWED, None),
        ("__import__('os')", Kind.UNKNOWN_FUNCTION, 1),
        ("orders.__class__", Kind.NOT_ALLOWED, 1),
    ],
)
def test_errors_name_their_kind_and_column(text: str, kind: Kind, col: int | None) -> None:
    error = error_of(text)
    assert error.kind == kind, error.message
    if col is not None:
        assert error.col == col


def test_an_unknown_field_suggests_the_closest_name() -> None:
    assert "did you mean `cart_items`?" in error_of("cart_itmes > 0").message


def test_comparing_a_duration_with_a_number_teaches_the_unit_functions() -> None:
    assert "minutes(30)" in error_of("now - last_cart_activity >= 30").message


# --- deadlines -------------------------------------------------------------------------------


def test_the_deadline_of_now_minus_time_is_the_instant_it_becomes_true() -> None:
    expr = compile_bool("cart_items > 0 and now - last_cart_activity >= minutes(30)")
    state = CustomerState(clock=1_000, cart={"A": [1, None]}, last_cart_activity=1_000)
    assert expr.nxt is not None
    assert expr.nxt(state) == 1_000 + 30 * MINUTE
    state.clock = 1_000 + 30 * MINUTE
    assert expr.fn(state) is True
    assert expr.nxt(state) is None  # stays true with time alone


def test_a_strict_comparison_flips_one_microsecond_after_the_boundary() -> None:
    expr = compile_bool("now - last_seen > days(1)")
    state = CustomerState(clock=0, last_seen=0)
    assert expr.nxt(state) == DAY + 1  # type: ignore[misc]


def test_a_condition_that_ends_with_time_has_its_end_as_deadline() -> None:
    expr = compile_bool("orders == 0 and now - first_seen < days(7)")
    state = CustomerState(clock=5, first_seen=5)
    assert expr.fn(state) is True
    assert expr.nxt(state) == 5 + 7 * DAY  # type: ignore[misc]


def test_no_deadline_while_a_part_time_cannot_change_decides_the_result() -> None:
    expr = compile_bool("cart_items > 0 and now - last_cart_activity >= minutes(30)")
    assert expr.nxt(CustomerState(clock=0, last_cart_activity=0)) is None  # type: ignore[misc]


def test_now_on_the_right_hand_side_and_negative_slope() -> None:
    expr = compile_bool("last_seen + days(2) > now")
    state = CustomerState(clock=0, last_seen=0)
    assert expr.fn(state) is True
    assert expr.nxt(state) == 2 * DAY  # type: ignore[misc]


def test_a_rule_without_time_has_no_deadline_function() -> None:
    assert compile_bool("orders >= 2").nxt is None


# --- what the compiler generates ---------------------------------------------------------------


def test_text_in_a_literal_stays_a_value() -> None:
    """A rule becomes Python source: what a string literal holds must never become code."""
    state = CustomerState(device="x' or True or 'y")
    assert compile_bool('device == "x\' or True or \'y"').fn(state) is True
    assert compile_bool('device == "x\' or True or \'z"').fn(state) is False
    assert compile_bool('device + "{a}\\\\" == "m{a}\\\\"').fn(CustomerState(device="m")) is True
    assert compile_bool('device in ["{v}", "\\")"]').fn(CustomerState(device='")')) is True


def test_deep_nesting_compiles_up_to_a_limit_then_is_a_problem_not_a_crash() -> None:
    deep = "(" * 80 + "not " * 40 + "orders > 1" + ")" * 80
    assert compile_bool(deep).fn(CustomerState(orders=2)) is True
    assert compile_bool("orders + " * 60 + "1 > 60").fn(CustomerState(orders=1)) is True
    error = error_of("orders + " * 150 + "1 > 2")
    assert error.kind == Kind.NOT_ALLOWED and "nested too deeply" in error.message
