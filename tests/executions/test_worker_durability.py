"""A run worker driving many runs at once is killed with SIGKILL; another one finishes them all.

Real processes on PostgreSQL: uvicorn and `manage.py runworker` (tests/stack.py), a fake OpenAI
server answering slowly, the API called over HTTP. What a run's checkpoint held when its worker
died is read from LangGraph's checkpoint tables: a node whose answer was saved there must never
be called again; only a node in flight at the kill may be called twice.
"""

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django.db import connection
from langgraph.checkpoint.postgres import PostgresSaver

from executions.checkpoints import postgres_conninfo
from executions.models import FINISHED, Execution
from runtime.compiler import compile_workflow
from runtime.validation import validate_spec
from tests.conftest import IssuedKey, issue_key
from tests.fakes.providers import FakeOpenAIServer
from tests.stack import Stack, stack_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RUNS = 20
STEPS = 5
CALL_SECONDS = 2.0
"""Each provider call's delay: long enough that the kill finds every run inside a call."""
WAIT = 180
"""Generous: the machine may be busy (these are bounds, not timings under test)."""

CHAIN = {
    "name": "five-slow-calls",
    "start_node": "input",
    "nodes": [{"id": "input", "type": "input"}]
    + [
        {
            "id": f"n{i}",
            "type": "llm",
            "metadata": {"source": "gpt", "prompt": f"step {i} of {{{{ user_input }}}}"},
        }
        for i in range(1, STEPS + 1)
    ],
    "edges": [{"from": "input", "to": "n1"}]
    + [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(1, STEPS)],
    "sources": [
        {
            "id": "gpt",
            "kind": "openai",
            "config": {
                "model_name": "gpt-4o-mini",
                "api_key_env": "OPENAI_API_KEY",
                "max_retries": 0,
            },
        }
    ],
}


@pytest.fixture
def stack(tmp_path: Path, openai_server: FakeOpenAIServer) -> Iterator[Stack]:
    env = stack_env(
        tmp_path,
        AGENTFLOW_PROVIDER_BASE_URLS=json.dumps({"openai": openai_server.base_url}),
        OPENAI_API_KEY="sk-test-durability-0123456789",
        AGENTFLOW_HEARTBEAT_STALE="2",
        AGENTFLOW_WORKER_CONCURRENCY="50",
        AGENTFLOW_WORKER_POLL="0.5",
    )
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop()


@pytest.fixture
def key(tenant) -> IssuedKey:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    return issue_key(tenant, "developer")


def _start_run(stack: Stack, key: IssuedKey, marker: str) -> str:
    answer = httpx2.post(
        f"{stack.url}/api/v1/workflows/execute",
        json={"workflow": CHAIN, "initial_state": {"user_input": marker}, "mode": "async"},
        headers={"X-API-Key": key.secret},
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["execution_id"])


def _saved_nodes(graph: Any, execution_id: str) -> set[str]:
    """The llm nodes whose answer the run's checkpoints hold, read as a resuming run reads them
    (`outputs` is a delta channel, rebuilt from the saved writes): in the state of its last
    checkpoint, or among the writes saved for the step in progress."""
    config: Any = {"configurable": {"thread_id": execution_id}}
    snapshot = graph.get_state(config)
    outputs = set((snapshot.values or {}).get("outputs") or {})
    saved = graph.checkpointer.get_tuple(config)
    for _task, channel, value in (saved.pending_writes if saved else None) or []:
        if channel == "outputs" and isinstance(value, dict):
            outputs |= set(value)
    return {node for node in outputs if node.startswith("n")}


def _calls(server: FakeOpenAIServer) -> Counter[tuple[str, str]]:
    """Provider calls per (run marker, node), from the prompts the fake received."""
    found: Counter[tuple[str, str]] = Counter()
    for request in server.requests:
        body: Any = request.json or {}
        prompt = body["messages"][-1]["content"]  # "step 3 of run-07"
        step, _, marker = prompt.removeprefix("step ").partition(" of ")
        found[marker, f"n{step}"] += 1
    return found


def test_a_killed_worker_s_twenty_runs_all_finish_and_no_saved_answer_is_asked_again(
    stack: Stack, key, openai_server
) -> None:
    openai_server.script(times=RUNS * STEPS * 3, delay=CALL_SECONDS)
    stack.web()
    first = stack.worker()
    markers = {_start_run(stack, key, f"run-{i:02d}"): f"run-{i:02d}" for i in range(RUNS)}
    ids = list(markers)
    running = Execution.objects.filter(pk__in=ids, status="running")
    wait_for(lambda: running.count() == RUNS, WAIT, f"all {RUNS} runs to be running at once")
    with PostgresSaver.from_conn_string(postgres_conninfo(connection.settings_dict)) as saver:
        compiled = compile_workflow(validate_spec(CHAIN), state_keys=["user_input"])
        graph = compiled.graph.copy(update={"checkpointer": saver})
        wait_for(
            lambda: all(_saved_nodes(graph, i) for i in ids),
            WAIT,
            "an answer saved in every run's checkpoint",
        )
        assert running.count() == RUNS  # still all in the middle: the kill interrupts each
        stack.kill(first)  # SIGKILL, the whole process group
        time.sleep(0.5)  # what the dead process had sent is in (or not) by now
        saved = {i: _saved_nodes(graph, i) for i in ids}
    assert set(Execution.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"running"}
    assert all(len(nodes) < STEPS for nodes in saved.values())

    stack.worker()  # takes the runs over once their heartbeat has gone stale
    finished = Execution.objects.filter(pk__in=ids, status__in=FINISHED)
    wait_for(lambda: finished.count() == RUNS, WAIT, "every run to end on the second worker")

    runs = {run.id: run for run in Execution.objects.filter(pk__in=ids)}
    assert {i: runs[i].status for i in ids} == dict.fromkeys(ids, "succeeded"), {
        i: runs[i].error for i in ids if runs[i].status != "succeeded"
    }
    calls = _calls(openai_server)
    for execution_id, marker in markers.items():
        run = runs[execution_id]
        assert run.final_state is not None
        assert run.final_state["text_result"] == f"echo: step {STEPS} of {marker}"
        assert run.deliveries == 2  # taken up once by each worker
        for node in saved[execution_id]:  # its answer was saved: never asked again
            assert calls[marker, node] == 1, (marker, node, saved[execution_id])
        for step in range(1, STEPS + 1):  # the node in flight at the kill: at most once more
            assert 1 <= calls[marker, f"n{step}"] <= 2, (marker, step, calls)
    assert sum(calls.values()) <= RUNS * STEPS + RUNS  # at most one repeat per run
