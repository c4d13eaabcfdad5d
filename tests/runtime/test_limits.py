"""The operator's caps on a run (runtime.limits): every spec is treated as hostile.

A small plugin node (`emit`) produces a result of any size, shape or failure, so no provider
is needed; sizes here are small limits set on the RunContext, not the defaults.
"""

import asyncio
import gc
import json
import sys
from typing import Any, ClassVar

import pytest

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.events import NodeStarted, RecordingObserver
from runtime.limits import DEFAULT_LIMITS, RunLimits
from runtime.node_metadata import NodeMetadata
from runtime.nodes import NODE_TYPES
from runtime.nodes.base import Node, NodeOutput, State
from runtime.runner import RunOutcome, run_workflow
from runtime.state import final_state
from runtime.validation import ValidationOptions, validate_spec


class EmitMetadata(NodeMetadata):
    size: int = 10
    shape: str = "text"
    seconds: float = 0.0
    noted: int = 0  # characters of input the attempt notes for its trace


class EmitNode(Node):
    """Returns `size` characters (or a value of another `shape`), after `seconds`."""

    kind = "emit"
    meta: EmitMetadata
    running: ClassVar[int] = 0
    most_running: ClassVar[int] = 0

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        if self.meta.noted:
            ctx.note_input(self.node_id, {"prompt": "y" * self.meta.noted})
        EmitNode.running += 1
        EmitNode.most_running = max(EmitNode.most_running, EmitNode.running)
        try:
            await asyncio.sleep(self.meta.seconds)
        finally:
            EmitNode.running -= 1
        return NodeOutput(result=self._value())

    def _value(self) -> Any:
        if self.meta.shape == "circular":
            loop: dict[str, Any] = {}
            loop["self"] = loop
            return loop
        if self.meta.shape in RAISED:
            raise RAISED[self.meta.shape]
        return "x" * self.meta.size


RAISED: dict[str, Exception] = {
    "memory": MemoryError(),
    "recursion": RecursionError("maximum recursion depth exceeded"),
    "overflow": OverflowError("int too large to convert to float"),
    "group": ExceptionGroup("unhandled errors in a TaskGroup", [OverflowError("port")]),
    "unicode": UnicodeEncodeError("ascii", "é", 0, 1, "ordinal not in range(128)"),
}


REGISTRY = {**NODE_TYPES, "emit": EmitNode}
OPTIONS = ValidationOptions(node_types={"emit": EmitMetadata})


def emit(node_id: str, **meta: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "emit", "metadata": meta}


def fan_out(count: int, *, join: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    """input → n0 … n{count-1} in parallel → the join (a merge aggregator by default)."""
    ids = [f"n{i}" for i in range(count)]
    join = join or {"id": "join", "type": "aggregator", "metadata": {"strategy": "merge"}}
    return {
        "name": "t",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input", "metadata": {"required": []}},
            *(emit(i, **meta) for i in ids),
            join,
        ],
        "edges": [{"from": "input", "to": i} for i in ids]
        + [{"from": i, "to": join["id"]} for i in ids],
        "limits": {"max_steps": count + 10},
    }


def run(
    raw: dict[str, Any], state: dict[str, Any] | None = None, **limits: int
) -> tuple[RunOutcome, RecordingObserver]:
    EmitNode.running = EmitNode.most_running = 0
    validated = validate_spec(raw, OPTIONS)
    assert validated.valid, validated.to_dict()["errors"]
    workflow = compile_workflow(validated, state_keys=(state or {}).keys(), node_types=REGISTRY)
    observer = RecordingObserver()
    ctx = RunContext(observer=observer, providers={}, limits=RunLimits(**limits))
    return asyncio.run(run_workflow(workflow, state or {}, ctx)), observer


def test_branches_beyond_max_parallel_nodes_wait_for_a_slot_and_all_run() -> None:
    outcome, observer = run(fan_out(12, seconds=0.05), max_parallel_nodes=3)
    assert outcome.status == "succeeded", outcome.error
    assert EmitNode.most_running == 3
    assert len([e for e in observer.finished() if e.node_id.startswith("n")]) == 12


def test_a_failing_branch_ends_the_run_and_the_waiting_ones_never_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unraisable: list[Any] = []  # a coroutine dropped unawaited would be reported here
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    raw = fan_out(12, seconds=0.05)
    raw["nodes"][1]["metadata"] = {"shape": "memory"}
    outcome, observer = run(raw, max_parallel_nodes=3)
    gc.collect()
    assert outcome.error is not None and outcome.error["code"] == "resource_limit"
    started = {e.node_id for e in observer.events if isinstance(e, NodeStarted)}
    assert len(started - {"input"}) < 12  # the waiting branches were cancelled, never started
    assert unraisable == []


def test_without_a_low_cap_the_same_branches_run_together() -> None:
    outcome, _ = run(fan_out(12, seconds=0.05))
    assert outcome.status == "succeeded"
    assert EmitNode.most_running == 12  # the default (16) lets all twelve run at once


def test_a_result_over_the_limit_fails_its_node_and_says_which_setting_raises_it() -> None:
    raw = fan_out(2, size=5_000)
    outcome, observer = run(raw, max_result_bytes=4_000)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error["code"] == "result_too_large"
    assert outcome.error["node_id"] in ("n0", "n1")
    assert "AGENTFLOW_MAX_RESULT_BYTES" in outcome.error["message"]
    failed = [e for e in observer.finished() if e.status == "failed"]
    assert failed and failed[0].output is None  # the trace never holds the oversized result
    assert "xxxx" not in json.dumps(outcome.final_state)


def test_the_state_limit_counts_every_update_the_run_writes() -> None:
    # Each update is under the result limit; together they pass the state limit.
    outcome, _ = run(fan_out(6, size=2_000), max_state_bytes=10_000)
    assert outcome.error is not None and outcome.error["code"] == "state_too_large"
    assert "AGENTFLOW_MAX_STATE_BYTES" in outcome.error["message"]
    assert outcome.error["node_id"] is not None


def test_a_merge_of_many_large_results_is_stopped_by_the_default_limits() -> None:
    # The hostile spec from issue 12, scaled down: many big results, then a merge of them all.
    outcome, _ = run(fan_out(45, size=199_999))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert (outcome.error["code"], outcome.error["node_id"]) == ("result_too_large", "join")
    size = len(json.dumps(outcome.final_state))
    assert size <= DEFAULT_LIMITS.max_final_state_bytes


def test_a_capped_node_under_on_error_continue_records_the_error_and_the_run_goes_on() -> None:
    raw = fan_out(1, size=5_000)
    raw["nodes"][1]["metadata"]["on_error"] = "continue"
    outcome, _ = run(raw, max_result_bytes=4_000)
    assert outcome.status == "succeeded", outcome.error
    assert [e["code"] for e in outcome.final_state["errors"]] == ["result_too_large"]
    assert outcome.final_state["outputs"]["n0"] is None


def test_an_initial_state_over_the_state_limit_fails_before_any_node_runs() -> None:
    outcome, observer = run(fan_out(1), {"user_input": "y" * 3_000}, max_state_bytes=2_000)
    assert outcome.error is not None and outcome.error["code"] == "state_too_large"
    assert "initial state" in outcome.error["message"]
    assert observer.finished() == []


def test_a_final_state_over_its_limit_loses_its_largest_values_and_fails_the_run() -> None:
    raw = fan_out(3, size=3_000, join={"id": "join", "type": "emit", "metadata": {"size": 10}})
    outcome, _ = run(raw, max_final_state_bytes=8_000)
    assert outcome.error is not None and outcome.error["code"] == "final_state_too_large"
    assert "AGENTFLOW_MAX_FINAL_STATE_BYTES" in outcome.error["message"]
    assert len(json.dumps(outcome.final_state, ensure_ascii=False).encode()) <= 8_000
    outputs = outcome.final_state["outputs"]
    assert [k for k in ("n0", "n1", "n2") if outputs[k] is None] != []  # the largest went
    assert outputs["join"] == "x" * 10  # small values stay
    assert "outputs.n" in outcome.error["message"]


def test_a_result_that_is_not_json_fails_with_invalid_result() -> None:
    outcome, _ = run(fan_out(1, shape="circular"))
    assert outcome.error is not None and outcome.error["code"] == "invalid_result"
    assert outcome.error["node_id"] == "n0"


@pytest.mark.parametrize(
    ("shape", "code"),
    [
        ("memory", "resource_limit"),
        ("recursion", "resource_limit"),
        ("overflow", "resource_limit"),
        ("group", "resource_limit"),
        ("unicode", "invalid_request"),
    ],
)
def test_a_failure_a_spec_can_cause_anywhere_is_named_not_internal(shape: str, code: str) -> None:
    outcome, _ = run(fan_out(1, shape=shape))
    assert outcome.error is not None
    assert (outcome.error["code"], outcome.error["node_id"]) == (code, "n0")
    assert "Node 'n0'" in outcome.error["message"]


def test_limits_must_be_positive_integers_and_name_their_setting() -> None:
    with pytest.raises(ValueError, match="AGENTFLOW_MAX_PARALLEL_NODES"):
        RunLimits(max_parallel_nodes=0)
    with pytest.raises(ValueError, match="AGENTFLOW_MAX_STATE_BYTES"):
        RunLimits(max_state_bytes=True)


def test_a_final_state_never_carries_a_lone_surrogate() -> None:
    assert final_state({"text_result": "a\ud800b"}) == {"text_result": "a\ufffdb"}
    json.dumps(final_state({"x": ["\udfff"]}), ensure_ascii=False).encode()  # encodable


def test_a_runs_recorded_inputs_stop_at_the_operators_cap_and_the_run_goes_on() -> None:
    raw = fan_out(5, noted=1000)
    outcome, observer = run(raw, max_recorded_input_chars=2500, max_parallel_nodes=1)
    assert outcome.status == "succeeded", outcome.error
    inputs = [e.details["input"] for e in observer.finished() if e.node_id.startswith("n")]
    kept = [i["prompt"] for i in inputs if "prompt" in i]
    assert [len(k) for k in kept[:2]] == [1000, 1000]
    assert kept[2].startswith("y" * 500 + "… [truncated: 500 more characters]")
    left_out = [i for i in inputs if "omitted" in i]
    assert len(left_out) == 2
    assert "AGENTFLOW_MAX_RECORDED_INPUT_CHARS" in left_out[0]["omitted"]
    assert "2,500" in left_out[0]["omitted"]
