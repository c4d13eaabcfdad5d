"""How compiled workflows run: parallel branches, joins, routes, loops, limits, retries.

A small plugin node type (`wait`) stands in for slow or failing work, so these tests need no
provider; the provider adapters are tested at the wire in tests/runtime/providers.
"""

import asyncio
import json
import time
from collections import Counter
from typing import Any, Literal

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.events import RecordingObserver
from runtime.node_metadata import NodeMetadata
from runtime.nodes import NODE_TYPES
from runtime.nodes.base import Node, NodeOutput, State
from runtime.runner import RunOutcome, run_workflow
from runtime.validation import ValidationOptions, validate_spec


class WaitMetadata(NodeMetadata):
    seconds: float = 0
    fail_times: int = 0
    error: Literal["retryable", "fatal"] = "retryable"
    tokens: int = 0
    value: Any = None


class Flaky(NodeError):
    code = "flaky"
    retryable = True


class Fatal(NodeError):
    code = "fatal"


class WaitNode(Node):
    kind = "wait"
    meta: WaitMetadata
    calls: Counter[str] = Counter()

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        WaitNode.calls[self.node_id] += 1
        await asyncio.sleep(self.meta.seconds)
        if WaitNode.calls[self.node_id] <= self.meta.fail_times:
            error = Flaky if self.meta.error == "retryable" else Fatal
            raise error(f"{self.node_id} failed on call {WaitNode.calls[self.node_id]}")
        value = self.meta.value if self.meta.value is not None else f"{self.node_id} done"
        return NodeOutput(result=value, tokens=self.meta.tokens, cost=self.meta.tokens / 1000)


REGISTRY = {**NODE_TYPES, "wait": WaitNode}
OPTIONS = ValidationOptions(node_types={"wait": WaitMetadata})


def wait(node_id: str, **meta: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "wait", "metadata": meta}


def spec(nodes: list[dict[str, Any]], edges: list[tuple[str, str]], **extra: Any) -> dict:
    return {
        "name": "t",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input", "metadata": {"required": []}}, *nodes],
        "edges": [{"from": a, "to": b} for a, b in edges] + extra.pop("more_edges", []),
        **extra,
    }


def run(
    raw: dict, state: dict | None = None, **ctx_args: Any
) -> tuple[RunOutcome, RecordingObserver]:
    WaitNode.calls.clear()
    validated = validate_spec(raw, OPTIONS)
    assert validated.valid, validated.to_dict()["errors"]
    workflow = compile_workflow(validated, state_keys=(state or {}).keys(), node_types=REGISTRY)
    observer = RecordingObserver()
    ctx = RunContext(observer=observer, providers={}, **ctx_args)
    return asyncio.run(run_workflow(workflow, state or {}, ctx)), observer


def finished(observer: RecordingObserver) -> list[tuple[str, str]]:
    return [(e.node_id, e.status) for e in observer.finished()]


def test_fan_out_branches_run_in_parallel_and_the_join_runs_once() -> None:
    raw = spec(
        [
            wait("a", seconds=0.2, tokens=10),
            wait("b", seconds=0.2, tokens=20),
            wait("c", seconds=0.2, tokens=30),
            wait("join"),
        ],
        [
            ("input", "a"),
            ("input", "b"),
            ("input", "c"),
            ("a", "join"),
            ("b", "join"),
            ("c", "join"),
        ],
    )
    outcome, observer = run(raw)
    assert outcome.status == "succeeded"
    assert WaitNode.calls["join"] == 1
    starts = {e.node_id: e.started_at for e in observer.finished()}
    ends = {e.node_id: e.started_at.timestamp() + e.duration for e in observer.finished()}
    assert max(starts[n] for n in "abc").timestamp() < min(ends[n] for n in "abc")
    assert outcome.final_state["tokens_used"] == 60
    assert abs(outcome.final_state["cost"] - 0.06) < 1e-9
    assert set(outcome.final_state["outputs"]) == {"input", "a", "b", "c", "join"}


def test_a_join_waits_for_a_longer_branch_and_still_runs_once() -> None:
    raw = spec(
        [wait("a"), wait("b"), wait("c", seconds=0.05), wait("d"), wait("join")],
        [("input", "a"), ("a", "b"), ("b", "c"), ("c", "join"), ("a", "d"), ("d", "join")],
    )
    outcome, observer = run(raw)
    order = [node for node, _ in finished(observer)]
    assert outcome.status == "succeeded"
    assert order.count("join") == 1
    assert order.index("join") > order.index("c")


ROUTED = {
    "nodes": [
        {
            "id": "router",
            "type": "router",
            "metadata": {
                "strategy": "keyword",
                "routes": {"x": ["ex"], "y": ["why"]},
                "default": "z",
            },
        },
        wait("x"),
        wait("y"),
        wait("z"),
        wait("end"),
    ],
    "edges": [("input", "router"), ("x", "end"), ("y", "end"), ("z", "end")],
    "more_edges": [
        {"from": "router", "to": "x", "condition": "x"},
        {"from": "router", "to": "y", "condition": "y"},
        {"from": "router", "to": "z"},
    ],
}


def test_only_the_route_taken_runs_and_the_join_after_it_runs_once() -> None:
    raw = spec(**json.loads(json.dumps(ROUTED)))
    outcome, observer = run(raw, {"user_input": "tell me WHY"})
    assert finished(observer) == [
        ("input", "succeeded"),
        ("router", "succeeded"),
        ("y", "succeeded"),
        ("end", "succeeded"),
    ]
    assert outcome.final_state["intent"] == "y"
    outcome, observer = run(raw, {"user_input": "nothing matches"})
    assert [n for n, _ in finished(observer)] == ["input", "router", "z", "end"]


def _loop_spec(max_iterations: int) -> dict:
    return spec(
        [
            wait("draft"),
            {
                "id": "critic",
                "type": "router",
                "metadata": {
                    "strategy": "keyword",
                    "routes": {"again": ["draft"]},
                    "default": "done",
                },
            },
            wait("publish"),
        ],
        [("input", "draft"), ("draft", "critic")],
        more_edges=[
            {
                "from": "critic",
                "to": "draft",
                "condition": "again",
                "loop": {"max_iterations": max_iterations},
            },
            {"from": "critic", "to": "publish", "condition": "done"},
        ],
    )


def test_a_bounded_loop_runs_at_most_n_times_then_fails_with_loop_limit() -> None:
    outcome, _ = run(_loop_spec(2), {"user_input": "draft forever"})
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["code"] == "loop_limit"
    assert outcome.error["node_id"] == "critic"
    assert WaitNode.calls["draft"] == 3  # the first pass and two loops back
    assert outcome.final_state["outputs"]["draft"] == "draft done"  # partial state kept


def test_a_loop_that_ends_by_itself_succeeds() -> None:
    outcome, _ = run(_loop_spec(2), {"user_input": "finished"})
    assert outcome.status == "succeeded"
    assert outcome.final_state["outputs"]["publish"] == "publish done"


def test_max_steps_bounds_node_executions() -> None:
    raw = spec(
        [wait(f"n{i}") for i in range(5)],
        [("input", "n0"), *((f"n{i}", f"n{i + 1}") for i in range(4))],
        limits={"max_steps": 3},
    )
    outcome, _ = run(raw)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error["code"] == "max_steps"
    assert WaitNode.calls["n1"] == 1 and WaitNode.calls["n2"] == 0


def test_retryable_failures_are_retried_with_backoff_and_traced_per_attempt() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    retry = {"max_attempts": 3, "initial_interval": 0.5, "backoff_factor": 2, "max_interval": 10}
    raw = spec([wait("flaky", fail_times=2, retry=retry)], [("input", "flaky")])
    outcome, observer = run(raw, sleep=fake_sleep)
    assert outcome.status == "succeeded"
    attempts = [(e.attempt, e.status) for e in observer.finished() if e.node_id == "flaky"]
    assert attempts == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert slept == [0.5, 1.0]


def test_a_bad_request_is_never_retried() -> None:
    retry = {"max_attempts": 5}
    raw = spec([wait("bad", fail_times=1, error="fatal", retry=retry)], [("input", "bad")])
    outcome, _ = run(raw)
    assert outcome.status == "failed"
    assert outcome.error == {"code": "fatal", "message": "bad failed on call 1", "node_id": "bad"}
    assert WaitNode.calls["bad"] == 1


def test_a_node_over_its_timeout_fails_with_timeout() -> None:
    raw = spec([wait("slow", seconds=60, timeout_seconds=0.05)], [("input", "slow")])
    start = time.perf_counter()
    outcome, _ = run(raw)
    assert time.perf_counter() - start < 30  # stopped: the node alone would take 60 s
    assert outcome.error is not None and outcome.error["code"] == "timeout"
    assert "timeout_seconds (0.05 s)" in outcome.error["message"]


def test_on_error_continue_records_the_error_and_goes_on() -> None:
    raw = spec(
        [
            wait("bad", fail_times=1, error="fatal", on_error="continue", output_key="bad_out"),
            wait("after"),
        ],
        [("input", "bad"), ("bad", "after")],
    )
    outcome, _ = run(raw)
    assert outcome.status == "succeeded"
    assert outcome.final_state["errors"] == [
        {"node_id": "bad", "code": "fatal", "message": "bad failed on call 1"}
    ]
    assert outcome.final_state["bad_out"] is None
    assert outcome.final_state["outputs"]["bad"] is None
    assert outcome.final_state["outputs"]["after"] == "after done"


def test_the_run_timeout_stops_the_run_and_keeps_its_partial_state() -> None:
    raw = spec(
        [wait("quick"), wait("slow", seconds=60)],
        [("input", "quick"), ("quick", "slow")],
        limits={"timeout_seconds": 0.2},
    )
    start = time.perf_counter()
    outcome, _ = run(raw)
    assert time.perf_counter() - start < 30  # stopped: the slow node alone would take 60 s
    assert outcome.status == "timed_out"
    assert outcome.final_state["outputs"]["quick"] == "quick done"


def test_a_result_is_data_and_is_never_rendered_as_a_template_again() -> None:
    raw = spec(
        [
            wait("echo", value="{{ secret }}"),
            {
                "id": "show",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "got: {{ outputs.echo }}"},
            },
        ],
        [("input", "echo"), ("echo", "show")],
    )
    outcome, _ = run(raw, {"secret": "hunter2"})
    assert outcome.final_state["final_output"] == "got: {{ secret }}"


def test_initial_state_keys_reach_the_nodes_and_the_final_state_is_json() -> None:
    raw = spec(
        [
            {
                "id": "show",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "{{ customer.name }}"},
            }
        ],
        [("input", "show")],
    )
    outcome, _ = run(raw, {"customer": {"name": "Ada"}, "ratio": float("nan")})
    assert outcome.final_state["final_output"] == "Ada"
    assert outcome.final_state["ratio"] is None
    json.dumps(outcome.final_state, allow_nan=False)


def test_a_compiled_graph_is_cached_by_the_spec() -> None:
    raw = spec([wait("a")], [("input", "a")])
    first = compile_workflow(validate_spec(raw, OPTIONS), node_types=REGISTRY)
    again = compile_workflow(validate_spec(raw, OPTIONS), node_types=REGISTRY)
    raw["nodes"][1]["metadata"]["seconds"] = 0.01
    other = compile_workflow(validate_spec(raw, OPTIONS), node_types=REGISTRY)
    assert first is again
    assert other is not first
