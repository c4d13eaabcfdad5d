"""The merged state keys (`outputs`, `errors`, `metadata`) come out of fan-outs, joins, loops,
routes and resumed runs exactly as merging every write in turn would make them.

They are merged once per superstep (runtime.state); these tests hold the results, not the speed.
"""

import asyncio
from collections import Counter
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.events import RecordingObserver
from runtime.node_metadata import NodeMetadata
from runtime.nodes import NODE_TYPES
from runtime.nodes.base import Node, NodeOutput, State
from runtime.runner import RunOutcome, run_workflow
from runtime.state import append_items, merge_dicts
from runtime.validation import ValidationOptions, validate_spec


class EchoMetadata(NodeMetadata):
    fail_first: bool = False
    tokens: int = 0


class Broken(NodeError):
    code = "broken"


class EchoNode(Node):
    """Answers `<id> <call number>`; with `fail_first`, fails its first call."""

    kind = "echo"
    meta: EchoMetadata
    calls: Counter[str] = Counter()

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        EchoNode.calls[self.node_id] += 1
        if self.meta.fail_first and EchoNode.calls[self.node_id] == 1:
            raise Broken(f"{self.node_id} broke")
        return NodeOutput(
            result=f"{self.node_id} {EchoNode.calls[self.node_id]}",
            tokens=self.meta.tokens,
            cost=self.meta.tokens / 1000,
        )


REGISTRY = {**NODE_TYPES, "echo": EchoNode}
OPTIONS = ValidationOptions(node_types={"echo": EchoMetadata})


def echo(node_id: str, **meta: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "echo", "metadata": meta}


def spec(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "merge",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input", "metadata": {"required": []}}, *nodes],
        "edges": edges,
        "limits": {"max_steps": 500},
    }


def edge(a: str, b: str, **extra: Any) -> dict[str, Any]:
    return {"from": a, "to": b, **extra}


def fan(n: int, **meta: Any) -> dict[str, Any]:
    branches = [echo(f"b{i}", tokens=i, **(meta if i % 4 == 1 else {})) for i in range(n)]
    join = {"id": "join", "type": "aggregator", "metadata": {"strategy": "merge"}}
    edges = [edge("input", f"b{i}") for i in range(n)] + [edge(f"b{i}", "join") for i in range(n)]
    return spec([*branches, join], edges)


async def _run(
    raw: dict[str, Any], state: dict[str, Any] | None = None, **kwargs: Any
) -> RunOutcome:
    validated = validate_spec(raw, OPTIONS)
    assert validated.valid, validated.to_dict()["errors"]
    workflow = compile_workflow(validated, state_keys=(state or {}).keys(), node_types=REGISTRY)
    ctx = RunContext(observer=RecordingObserver(), providers={})
    return await run_workflow(workflow, state or {}, ctx, **kwargs)


def run(raw: dict[str, Any], state: dict[str, Any] | None = None) -> RunOutcome:
    EchoNode.calls.clear()
    return asyncio.run(_run(raw, state))


def test_a_wide_fan_out_merges_every_branch_and_the_join_sees_them_all() -> None:
    outcome = run(fan(300))
    assert outcome.status == "succeeded", outcome.error
    branches = {f"b{i}": f"b{i} 1" for i in range(300)}
    final = outcome.final_state
    assert final["outputs"] == {"input": None, **branches, "join": branches}
    assert list(final["outputs"])[:3] == ["input", "b0", "b1"]  # in the order of the tasks
    assert final["final_output"] == branches
    assert final["tokens_used"] == sum(range(300))
    assert abs(final["cost"] - sum(range(300)) / 1000) < 1e-9
    assert final["errors"] == []
    assert EchoNode.calls == Counter(branches.keys())


def test_every_failed_branch_of_a_fan_out_is_recorded_in_order() -> None:
    outcome = run(fan(12, fail_first=True, on_error="continue"))
    assert outcome.status == "succeeded", outcome.error
    failed = ["b1", "b5", "b9"]
    assert outcome.final_state["errors"] == [
        {"node_id": n, "code": "broken", "message": f"{n} broke"} for n in failed
    ]
    outputs = outcome.final_state["outputs"]
    assert [n for n, v in outputs.items() if v is None] == ["input", *failed]
    assert set(outcome.final_state["final_output"]) == {f"b{i}" for i in range(12)} - {*failed}


def test_the_callers_outputs_metadata_and_errors_are_kept_and_added_to() -> None:
    given = {
        "outputs": {"earlier": 1, "b0": "stale"},
        "metadata": {"user": "ada"},
        "errors": [{"node_id": "before", "code": "x", "message": "m"}],
    }
    outcome = run(fan(3, fail_first=True, on_error="continue"), given)
    final = outcome.final_state
    assert final["outputs"] == {
        "earlier": 1,
        "b0": "b0 1",  # a node's write replaces the caller's value
        "input": None,
        "b1": None,
        "b2": "b2 1",
        "join": {"earlier": 1, "b0": "b0 1", "b2": "b2 1"},
    }
    assert final["metadata"] == {"user": "ada"}
    assert final["errors"] == [
        {"node_id": "before", "code": "x", "message": "m"},
        {"node_id": "b1", "code": "broken", "message": "b1 broke"},
    ]


def _loop() -> dict[str, Any]:
    critic = {
        "id": "critic",
        "type": "router",
        "metadata": {
            "strategy": "rules",
            "rules": [{"when": "outputs.draft == 'draft 3'", "intent": "done"}],
            "default": "again",
        },
    }
    edges = [
        edge("input", "draft"),
        edge("draft", "critic"),
        edge("critic", "draft", condition="again", loop={"max_iterations": 5}),
        edge("critic", "publish", condition="done"),
    ]
    return spec([echo("draft"), critic, echo("publish")], edges)


def test_a_loop_s_later_pass_replaces_its_earlier_output() -> None:
    outcome = run(_loop())
    assert outcome.status == "succeeded", outcome.error
    assert outcome.final_state["outputs"] == {
        "input": None,
        "draft": "draft 3",
        "critic": "done",
        "publish": "publish 1",
    }
    assert outcome.final_state["intent"] == "done"
    assert "_loops" not in outcome.final_state


def test_a_route_writes_only_the_branch_it_took() -> None:
    router = {
        "id": "router",
        "type": "router",
        "metadata": {"strategy": "keyword", "routes": {"x": ["hello"]}, "default": "y"},
    }
    raw = spec(
        [router, echo("x"), echo("y")],
        [edge("input", "router"), edge("router", "x", condition="x"), edge("router", "y")],
    )
    outcome = run(raw, {"user_input": "hello there"})
    assert outcome.final_state["outputs"] == {"input": None, "router": "x", "x": "x 1"}


def test_a_checkpointed_run_resumes_with_every_output_it_had_reached() -> None:
    # Past 100 writes of `outputs`, so the resumed value comes from a snapshot plus writes.
    nodes = [echo(f"n{i}", fail_first=i == 140) for i in range(150)]
    edges = [edge("input", "n0"), *(edge(f"n{i}", f"n{i + 1}") for i in range(149))]
    raw = spec(nodes, edges)
    EchoNode.calls.clear()

    async def twice() -> tuple[RunOutcome, RunOutcome]:
        saver = InMemorySaver()
        first = await _run(raw, checkpointer=saver, thread_id="t")
        return first, await _run(raw, checkpointer=saver, thread_id="t")

    first, second = asyncio.run(twice())
    assert first.status == "failed"
    assert first.final_state["outputs"] == {
        "input": None,
        **{f"n{i}": f"n{i} 1" for i in range(140)},
    }
    assert second.status == "succeeded", second.error
    assert second.final_state["outputs"] == {
        "input": None,
        **{f"n{i}": f"n{i} {2 if i == 140 else 1}" for i in range(150)},
    }
    assert EchoNode.calls == Counter({f"n{i}": 2 if i == 140 else 1 for i in range(150)})


def test_merging_a_superstep_at_once_equals_merging_write_by_write_and_copies() -> None:
    old = {"a": 1, "b": 2}
    writes: list[dict[str, Any] | None] = [{"b": 3}, None, {"c": 4}, {"a": 5}]
    merged = merge_dicts(old, writes)
    assert merged == {"a": 5, "b": 3, "c": 4}
    assert merge_dicts(merge_dicts(old, writes[:2]), writes[2:]) == merged
    assert old == {"a": 1, "b": 2}  # a checkpoint may still hold it
    items = [1]
    assert append_items(items, [[2], None, [3, 4]]) == [1, 2, 3, 4]
    assert items == [1]
