"""CEL (Common Expression Language) rules for the rules router, compiled once, run within caps.

Backed by `common-expression-language` (Rust bindings): it compiles ~15x faster than cel-python and
its parse errors carry line, column and the expected tokens. CEL has no side effects and no I/O.
But the binding (0.10) holds the GIL while it evaluates and has no cost limit, and a rule's
comprehensions can nest (`l.all(a, l.all(b, l.all(c, ...)))` is |l|**3 iterations), so a rule is
costed before it runs (`cel_cost`: its comprehensions' nesting times the largest collection in the
state it reads, and how much its `+` can grow values) and refused over the caps; one that passes
runs rewritten to call back into Python at every comprehension iteration, which counts steps and
reads the clock against the deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

from runtime.errors import ExpressionError, RuleLimitExceeded
from runtime.sandbox import cel_cost
from runtime.sandbox.cache import WeightedCache
from runtime.sandbox.limits import current_limits
from runtime.sandbox.meter import Meter

_ERROR_MARK = "ERROR: <input>:"
RESERVED = cel_cost.RESERVED_PREFIX
_ENTRY_OVERHEAD = 256


@dataclass(frozen=True, slots=True)
class _Rule:
    program: cel.Program
    """The rule as written: what runs when it has no comprehension and no `+`."""
    variables: frozenset[str]
    shape: cel_cost.Shape
    metered: cel.Program | None
    """The rule rewritten to call `TICK` each comprehension iteration (None: nothing to count)."""
    problem: str | None
    """Why the rule may not run (it names what the rewriting uses)."""


def _cache_bytes() -> int:
    return current_limits().rule_cache_bytes


_rules: WeightedCache[_Rule] = WeightedCache(_cache_bytes, overhead=_ENTRY_OVERHEAD)


def _build(source: str) -> _Rule:
    program = cel.compile(source)
    tokens = cel_cost.tokenize(source)
    shape = cel_cost.shape(tokens)
    variables = frozenset(program.variables())
    names = sorted(n for n in {*variables, *program.functions()} if n.startswith(RESERVED))
    if names:
        problem = f"uses the name '{names[0]}'; names starting with '{RESERVED}' are reserved"
        return _Rule(program, variables, shape, None, problem)
    if not shape.comprehensions and shape.boolean:
        return _Rule(program, variables, shape, None, None)
    try:
        metered = cel.compile(cel_cost.instrument(source, tokens, shape))
    except Exception:  # the rewriting misread the rule: refuse it rather than run it unbounded
        return _Rule(program, variables, shape, None, "cannot be bounded by the sandbox")
    return _Rule(program, variables, shape, metered, None)


def _compile(source: str) -> _Rule:
    return _rules.get(source, _build)


def expression_problem(source: str) -> str | None:
    """Return why `source` is not a valid CEL expression, or None when it compiles."""
    if not source.strip():
        return "is empty"
    try:
        rule = _compile(source)
    except RecursionError:
        return "is nested too deeply to parse"
    except Exception as exc:  # the binding raises ValueError or others on odd input: all "bad"
        return _describe(str(exc))
    return rule.problem


def _describe(raw: str) -> str:
    """Turn the library's message into one line that does not repeat the whole expression."""
    _, mark, rest = raw.partition(_ERROR_MARK)
    if not mark:
        return f"does not parse: {raw.splitlines()[0] if raw else 'unknown error'}"
    position, _, detail = rest.partition(": ")
    first_line = (detail.splitlines()[0] if detail else "syntax error").split(" expecting ")[0]
    return f"does not parse at {position}: {first_line}"


def evaluate_rule(source: str, state: Mapping[str, Any], *, node_id: str | None = None) -> bool:
    """Evaluate a router rule against the state, within the sandbox's caps and the deadline the
    runtime set (`evaluation_deadline`); a rule must produce a boolean.

    Raises:
        RuleLimitExceeded: the rule would go, or went, over a cap (`limit` says which).
        ExpressionError: the rule does not compile, fails (e.g. a missing field) or is not boolean.
    """
    try:
        rule = _compile(source)
        if rule.problem:
            raise ExpressionError(f"The rule '{source}' {rule.problem}.")
        activation = {k: state[k] for k in rule.variables if k in state}
        meter = Meter("rule")
        _check_cost(rule, activation, meter)
        result = _run(rule, activation, meter)
    except ExpressionError as exc:
        exc.node_id = exc.node_id or node_id
        raise
    except Exception as exc:  # compile/eval errors of the binding: ValueError/RuntimeError/...
        raise ExpressionError(f"The rule '{source}' failed: {exc}", node_id=node_id) from exc
    if not isinstance(result, bool):
        kind = result if isinstance(result, str) else type(result).__name__
        msg = f"The rule '{source}' gave {kind}, not true/false."
        raise ExpressionError(msg, node_id=node_id)
    return result


def _check_cost(rule: _Rule, activation: Mapping[str, Any], meter: Meter) -> None:
    shape = rule.shape
    if not shape.comprehensions and shape.growth == 1:
        return
    longest, inner, widest = _extent(activation)
    growth = shape.growth
    range_bound = max(longest, shape.tokens) * growth
    steps = cel_cost.cost(shape.comprehensions, range_bound, 1 + inner, 1 + range_bound)
    if steps > meter.max_steps:
        meter.exceeded("rule_max_steps", f"could take about {steps:,} comprehension steps")
    if growth == 1 and not shape.maps:
        return  # it builds nothing bigger than the state it reads
    value = max(longest, widest, shape.tokens) * growth * range_bound**shape.maps
    if value > current_limits().rule_max_value:
        meter.exceeded("rule_max_value", f"could build a value of about {value:,} items")


def _extent(activation: Mapping[str, Any]) -> tuple[int, int, int]:
    """The longest list or map anywhere in `activation`, the longest one inside another, and the
    longest string or bytes."""
    longest = inner = widest = 0
    stack = [(value, False) for value in activation.values()]
    while stack:
        item, inside = stack.pop()
        if isinstance(item, str | bytes):
            widest = max(widest, len(item))
            continue
        children = item.values() if isinstance(item, Mapping) else item
        if isinstance(item, Mapping | list | tuple):
            longest = max(longest, len(item))
            inner = max(inner, len(item)) if inside else inner
            stack += [(child, True) for child in children]
    return longest, inner, widest


def _run(rule: _Rule, activation: dict[str, Any], meter: Meter) -> Any:
    if rule.metered is None:
        return rule.program.execute(activation)
    stopped: list[RuleLimitExceeded] = []

    def tick() -> bool | None:
        """Count an iteration; past a cap, give null, which fails the comprehension at once (an
        exception would do too, but the binding prints every one to stderr)."""
        if stopped:
            return None
        try:
            meter.step()
        except RuleLimitExceeded as exc:
            stopped.append(exc)
            return None
        return True

    try:
        result = rule.metered.execute(cel.Context(activation, {cel_cost.TICK: tick}))
    except Exception:
        if stopped:
            raise stopped[0] from None
        raise
    if stopped:  # the failure CEL's `||` or `&&` absorbed still stops the rule
        raise stopped[0]
    return result


def clear_caches() -> None:
    """Forget compiled expressions (benchmarks and tests)."""
    _rules.clear()
