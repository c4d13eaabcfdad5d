"""How a run stops short: its caller refuses the next node (`RunContext.go_on`), or its
checkpoint store goes away (the outcome says interrupted, not failed)."""

import asyncio
from typing import Any

import psycopg
from langgraph.checkpoint.memory import InMemorySaver

from runtime.compiler import compile_workflow
from runtime.context import RunContext, RunStopped
from runtime.events import NodeFinished, NodeStarted
from runtime.runner import RunOutcome, run_workflow
from runtime.validation import validate_spec

CHAIN = {
    "name": "chain",
    "start_node": "input",
    "nodes": [{"id": "input", "type": "input"}]
    + [
        {
            "id": f"n{i}",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": f"step {i}"},
        }
        for i in range(1, 5)
    ],
    "edges": [{"from": "input", "to": "n1"}]
    + [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(1, 4)],
}


class _Started:
    def __init__(self) -> None:
        self.nodes: list[str] = []

    async def node_started(self, event: NodeStarted) -> None:
        self.nodes.append(event.node_id)

    async def node_finished(self, event: NodeFinished) -> None:
        pass

    async def node_token(self, node_id: str, delta: str) -> None:
        pass


def _run(ctx: RunContext, checkpointer: Any = None) -> RunOutcome:
    workflow = compile_workflow(validate_spec(CHAIN), state_keys=["user_input"])
    return asyncio.run(
        run_workflow(workflow, {"user_input": "hi"}, ctx, checkpointer=checkpointer, thread_id="t1")
    )


def test_a_node_its_caller_refuses_never_starts_and_the_run_ends_cancelled() -> None:
    asked: list[int] = []

    async def go_on() -> None:
        asked.append(1)
        if len(asked) == 3:  # before n2
            raise RunStopped("cancelled")

    started = _Started()
    outcome = _run(RunContext(go_on=go_on, observer=started))
    assert outcome.status == "cancelled", outcome.error
    assert started.nodes == ["input", "n1"]
    assert set(outcome.final_state["outputs"]) == {"input", "n1"}  # as far as it got


class _StoreGone(InMemorySaver):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


def test_a_run_whose_checkpoint_store_went_away_is_interrupted_not_failed() -> None:
    outcome = _run(RunContext(), _StoreGone(psycopg.OperationalError("server closed")))
    assert (outcome.status, outcome.interrupted) == ("failed", True)


def test_a_run_broken_otherwise_outside_its_nodes_is_failed_not_interrupted() -> None:
    outcome = _run(RunContext(), _StoreGone(ValueError("a bug")))
    assert (outcome.status, outcome.interrupted) == ("failed", False)
    assert outcome.error is not None and outcome.error["code"] == "internal_error"
