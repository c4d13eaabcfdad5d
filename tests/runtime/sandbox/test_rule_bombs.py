"""CEL rules written to run for ever or to build huge values: refused before they run when their
cost is plain from their text and the state, else stopped while they run; always with a named
error, within the deadline plus a second, and with the process less than 50 MB bigger."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from runtime.errors import ExpressionError, RuleLimitExceeded
from runtime.sandbox import cel_cost
from runtime.sandbox.expressions import evaluate_rule
from runtime.sandbox.limits import SandboxLimits, configure, evaluation_deadline
from tests.runtime.sandbox.conftest import DEADLINE, MAX_GROWTH, SLACK

LIMIT = "rule_limit"


def _state() -> dict[str, Any]:
    rows = [{"name": f"r{i}", "price": i, "tags": ["a", "b"]} for i in range(1000)]
    return {
        "items": list(range(300)),
        "long": list(range(5000)),
        "s": "x" * 1_000_000,
        "rows": rows,
    }


BOMBS: dict[str, str] = {
    "three nested all over 300 items": "items.all(a, items.all(b, items.all(c, a+b+c >= 0)))",
    "three nested exists": "items.exists(a, items.exists(b, items.exists(c, a+b+c < 0)))",
    "map of the whole list per item": "items.map(a, items).size() > 0",
    "map result that is not a boolean": "items.map(a, items)",
    "doubling in chained maps": "items.map(a, items + items).map(b, b + b).map(c, c + c)"
    ".size() > 0",
    "string concatenated 20 times": "s + s + s + s + s + s + s + s + s + s + s + s + s + s + s + s"
    " + s + s + s + s == ''",
    "filter of 5,000 items, twice nested": "long.filter(a, long.filter(b, a == b).size() > 0)"
    ".size() > 0",
    "map over 5,000 items": "long.map(a, a * 2).size() > 0",
    "exists_one nested": "long.exists_one(a, long.exists_one(b, a == b))",
    "rows against rows": "rows.all(a, rows.all(b, a.price + b.price >= 0))",
}


def _rss_peak_kb() -> int:
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))  # type: ignore[union-attr]


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))  # type: ignore[union-attr]


@contextmanager
def _process_growth(into: list[int]) -> Iterator[None]:
    """How much the process's resident memory peaked above where it was (the Rust side of the
    binding allocates outside Python's tracing)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak
    start = _rss_kb()
    yield
    into.append((_rss_peak_kb() - start) * 1024)


@pytest.mark.parametrize("rule", BOMBS.values(), ids=BOMBS.keys())
def test_a_rule_bomb_is_stopped_with_a_named_error_in_time_and_memory(rule: str) -> None:
    state, growth = _state(), list[int]()
    start = time.monotonic()
    with (
        _process_growth(growth),
        evaluation_deadline(start + DEADLINE),
        pytest.raises(RuleLimitExceeded) as caught,
    ):
        evaluate_rule(rule, state, node_id="r1")

    assert caught.value.code == LIMIT
    assert caught.value.node_id == "r1"
    assert "AGENTFLOW_RULE_" in caught.value.message or caught.value.limit == "deadline"
    assert time.monotonic() - start < DEADLINE + SLACK
    assert growth[0] < MAX_GROWTH


def test_a_costly_rule_is_refused_before_it_runs() -> None:
    start = time.monotonic()
    with pytest.raises(RuleLimitExceeded) as caught:
        evaluate_rule(BOMBS["three nested all over 300 items"], _state())

    assert caught.value.limit == "rule_max_steps"
    assert time.monotonic() - start < 0.5


def test_a_deadline_set_by_the_runtime_stops_a_rule_while_it_runs() -> None:
    configure(SandboxLimits(rule_max_steps=10**12, rule_max_seconds=60))
    rule = "long.all(a, long.exists(b, b == a))"  # 12.5 M iterations: ~10 s here
    state = {"long": list(range(5000))}
    start = time.monotonic()
    with evaluation_deadline(start + 0.2), pytest.raises(RuleLimitExceeded) as caught:
        evaluate_rule(rule, state, node_id="r1")

    assert caught.value.limit == "deadline"
    assert "timeout_seconds" in caught.value.message
    assert time.monotonic() - start < 0.2 + SLACK


def test_the_operators_own_time_cap_stops_a_rule_too() -> None:
    configure(SandboxLimits(rule_max_steps=10**12, rule_max_seconds=0.2))
    with pytest.raises(RuleLimitExceeded) as caught:
        evaluate_rule("long.all(a, long.exists(b, b == a))", {"long": list(range(5000))})

    assert caught.value.limit == "rule_max_seconds"
    assert "AGENTFLOW_RULE_MAX_SECONDS" in caught.value.message


def test_iterations_are_counted_as_they_run_should_the_estimate_fall_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cel_cost, "cost", lambda *args: 0)
    configure(SandboxLimits(rule_max_steps=1_000))
    rule = "items.all(a, items.exists(b, b == 299))"
    with pytest.raises(RuleLimitExceeded) as caught:
        evaluate_rule(rule, {"items": list(range(300))})

    assert caught.value.limit == "rule_max_steps"


def test_an_error_cel_absorbs_still_stops_the_rule() -> None:
    state = {"long": list(range(5000))}
    rule = "long.all(a, long.all(b, true)) || true"
    with evaluation_deadline(time.monotonic() + 0.05), pytest.raises(RuleLimitExceeded):
        evaluate_rule(rule, state)


def test_a_rule_that_failed_is_an_expression_error_not_a_crash() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_rule("1 / 0 == 1", {})

    assert caught.value.code == "expression_error"
