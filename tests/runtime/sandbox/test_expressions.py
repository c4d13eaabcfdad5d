"""CEL rules: compile errors with a position, evaluation over the state."""

from __future__ import annotations

import pytest

from runtime.errors import ExpressionError
from runtime.sandbox.expressions import evaluate_rule, expression_problem


def test_a_rule_over_state_fields_compiles_and_evaluates() -> None:
    rule = "metadata.tier == 'enterprise' && size(user_input) > 5"
    assert expression_problem(rule) is None
    assert evaluate_rule(rule, {"metadata": {"tier": "enterprise"}, "user_input": "a long one"})
    assert not evaluate_rule(rule, {"metadata": {"tier": "free"}, "user_input": "a long one"})


@pytest.mark.parametrize("rule", ["a ==", "x &&& y", "size(", "", "   "])
def test_a_rule_that_does_not_parse_is_a_problem(rule: str) -> None:
    assert expression_problem(rule) is not None


def test_the_problem_names_the_position_without_repeating_the_rule() -> None:
    problem = expression_problem("user_input.contains('x') &&")
    assert problem is not None
    assert problem.startswith("does not parse at 1:")
    assert "contains('x')" not in problem


def test_a_rule_must_give_a_boolean() -> None:
    with pytest.raises(ExpressionError, match="not true/false"):
        evaluate_rule("1 + 1", {})


def test_a_rule_over_a_missing_field_fails_the_node() -> None:
    with pytest.raises(ExpressionError):
        evaluate_rule("missing.field == 1", {})
