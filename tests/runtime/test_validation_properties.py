"""Property-based: whatever a client sends, the validator answers with errors, never raises."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.errors import ErrorType
from runtime.validation import ValidationOptions, ValidationResult, validate_spec
from tests.runtime.factories import chain_spec, support_desk

EXAMPLES = [
    json.loads(p.read_text())
    for p in sorted((Path(__file__).parents[2] / "examples").glob("*.json"))
]
SEEDS = [*EXAMPLES, support_desk(), chain_spec(8)]
TYPES = {t.value for t in ErrorType}
EXAMPLES_PER_TEST = int(os.environ.get("SPEC_FUZZ_EXAMPLES", "300"))  # raise it for a long fuzz run
FAST = settings(
    max_examples=EXAMPLES_PER_TEST, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Words a spec uses, so that mutations hit meaningful places as often as random ones.
spec_words = st.sampled_from(
    [
        "id",
        "type",
        "metadata",
        "from",
        "to",
        "condition",
        "loop",
        "source",
        "prompt",
        "strategy",
        "default",
        "routes",
        "rules",
        "kind",
        "config",
        "api_key",
        "api_key_env",
        "bandwidth",
        "END",
        "input",
        "router",
        "llm",
        "gpt",
        "{{ x.__class__ }}",
        "{% if %}",
        "a ==",
        "DATABASE_URL",
    ]
)
values = json_values | spec_words | st.integers(-3, 3)


def _check(result: ValidationResult, with_positions: bool) -> None:
    for problem in [*result.errors, *result.warnings]:
        assert problem.type in TYPES
        assert problem.message and problem.message[0].isupper()
        assert problem.path == "" or problem.path.startswith("/")
        if with_positions:
            assert problem.line is not None and problem.line >= 1
            assert problem.column is not None and problem.column >= 1
    assert result.valid == (not result.errors)
    json.dumps(result.to_dict())


def _containers(value: Any) -> list[Any]:
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list):
            found.append(item)
            stack.extend(item.values() if isinstance(item, dict) else item)
    return found


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    spec = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        target = draw(st.sampled_from(_containers(spec)))
        _mutate(draw, target)
    return spec


def _mutate(draw: st.DrawFn, target: dict[str, Any] | list[Any]) -> None:
    action = draw(st.sampled_from(["set", "delete", "add", "duplicate"]))
    if isinstance(target, dict):
        key = draw(st.sampled_from(sorted(target)) | spec_words) if target else draw(spec_words)
        if action == "delete":
            target.pop(key, None)
        else:
            target[key] = draw(values)
    elif target:
        index = draw(st.integers(0, len(target) - 1))
        {
            "set": lambda: target.__setitem__(index, draw(values)),
            "delete": lambda: target.pop(index),
            "add": lambda: target.append(draw(values)),
            "duplicate": lambda: target.append(copy.deepcopy(target[index])),
        }[action]()


@FAST
@given(mutated_specs())
def test_mutated_specs_never_crash_the_validator(spec: Any) -> None:
    _check(validate_spec(spec), with_positions=False)
    _check(validate_spec(json.dumps(spec, indent=1)), with_positions=True)


@FAST
@given(mutated_specs())
def test_text_and_dict_input_find_the_same_problems(spec: Any) -> None:
    from_dict = validate_spec(spec)
    from_text = validate_spec(json.dumps(spec))
    assert [(e.type, e.path) for e in from_dict.errors] == [
        (e.type, e.path) for e in from_text.errors
    ]


@FAST
@given(mutated_specs(), st.sampled_from(["input", "router", "writer", "draft", "triage", "ghost"]))
def test_single_node_validation_never_crashes(spec: Any, node_id: str) -> None:
    _check(validate_spec(spec, options=ValidationOptions(only_node=node_id)), with_positions=False)


@FAST
@given(json_values)
def test_arbitrary_json_never_crashes_the_validator(value: Any) -> None:
    _check(
        validate_spec(value if isinstance(value, dict) else {"nodes": value}), with_positions=False
    )
    _check(validate_spec(json.dumps(value)), with_positions=True)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_bytes_and_text_never_crash_the_validator(raw: bytes | str) -> None:
    _check(validate_spec(raw), with_positions=False)


@FAST
@given(st.sampled_from(SEEDS), st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_corrupted_json_text_never_crashes_the_validator(spec: Any, at: int, junk: bytes) -> None:
    raw = json.dumps(spec).encode()
    at %= len(raw)
    _check(validate_spec(raw[:at] + junk + raw[at + len(junk) :]), with_positions=False)


@st.composite
def valid_dags(draw: st.DrawFn) -> dict[str, Any]:
    """Random DAGs of merge aggregators fed by an input node: always valid."""
    count = draw(st.integers(1, 40))
    ids = ["start", *(f"n{i}" for i in range(count))]
    edges = [{"from": ids[i], "to": ids[i + 1]} for i in range(count)]  # every node reachable
    extra = draw(st.lists(st.tuples(st.integers(0, count), st.integers(0, count)), max_size=30))
    edges += [{"from": ids[a], "to": ids[b]} for a, b in extra if a < b]
    loops = draw(st.lists(st.tuples(st.integers(1, count), st.integers(0, count)), max_size=3))
    edges += [
        {"from": ids[a], "to": ids[b], "loop": {"max_iterations": 2}}  # type: ignore[dict-item]
        for a, b in loops
        if b < a
    ]
    nodes: list[dict[str, object]] = [{"id": "start", "type": "input"}]
    nodes += [{"id": i, "type": "aggregator", "metadata": {"strategy": "merge"}} for i in ids[1:]]
    return {"name": "dag", "start_node": "start", "nodes": nodes, "edges": edges}


@FAST
@given(valid_dags())
def test_generated_dags_with_bounded_back_edges_are_valid(spec: dict[str, Any]) -> None:
    result = validate_spec(json.dumps(spec))
    assert result.valid, result.to_dict()


@FAST
@given(valid_dags(), st.data())
def test_an_unbounded_back_edge_is_always_a_cycle(
    spec: dict[str, Any], data: st.DataObject
) -> None:
    ids = [n["id"] for n in spec["nodes"]]
    a = data.draw(st.integers(0, len(ids) - 1))
    spec["edges"].append({"from": ids[a], "to": ids[data.draw(st.integers(0, a))]})
    assert "cycle" in {e.type for e in validate_spec(spec).errors}
