"""A run worker driving many runs at once is killed with SIGKILL (once, then three times over),
or stopped with SIGTERM; other workers finish its runs.

Real processes on PostgreSQL: uvicorn and `manage.py runworker` (tests/stack.py), a fake OpenAI
server answering slowly, the API called over HTTP. What a run's checkpoint held when its worker
died is read from LangGraph's checkpoint tables: a node whose answer was saved there must never
be called again; only a node in flight at the kill may be called twice.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
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
from executions.models import FINISHED, Execution, Worker
from runtime.compiler import compile_workflow
from runtime.validation import validate_spec
from tests.conftest import IssuedKey, issue_key
from tests.fakes.holding import HoldingOpenAI
from tests.fakes.providers import FakeOpenAIServer
from tests.fakes.server import FakeServer
from tests.stack import Stack, stack_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RUNS = 20
STEPS = 5
CALL_SECONDS = 2.0
"""Each provider call's delay: long enough that the kill finds every run inside a call."""
WAIT = 180
"""Generous: the machine may be busy (these are bounds, not timings under test)."""


def _chain(steps: int) -> dict[str, Any]:
    return {
        "name": f"{steps}-slow-calls",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input"}]
        + [
            {
                "id": f"n{i}",
                "type": "llm",
                "metadata": {"source": "gpt", "prompt": f"step {i} of {{{{ user_input }}}}"},
            }
            for i in range(1, steps + 1)
        ],
        "edges": [{"from": "input", "to": "n1"}]
        + [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(1, steps)],
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


CHAIN = _chain(STEPS)


@contextlib.contextmanager
def _stack(tmp_path: Path, server: FakeOpenAIServer, **extra: str) -> Iterator[Stack]:
    settings = {
        "AGENTFLOW_PROVIDER_BASE_URLS": json.dumps({"openai": server.base_url}),
        "OPENAI_API_KEY": "sk-test-durability-0123456789",
        "AGENTFLOW_WORKER_CONCURRENCY": "50",
        "AGENTFLOW_WORKER_POLL": "0.5",
    }
    env = stack_env(tmp_path) | settings | extra
    stack = Stack(env, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack(tmp_path: Path, openai_server: FakeOpenAIServer) -> Iterator[Stack]:
    with _stack(tmp_path, openai_server, AGENTFLOW_HEARTBEAT_STALE="2") as stack:
        yield stack


@pytest.fixture
def key(tenant) -> IssuedKey:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    return issue_key(tenant, "developer")


def _start_run(stack: Stack, key: IssuedKey, marker: str, spec: dict[str, Any] = CHAIN) -> str:
    answer = httpx2.post(
        f"{stack.url}/api/v1/workflows/execute",
        json={"workflow": spec, "initial_state": {"user_input": marker}, "mode": "async"},
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


def _calls(server: FakeServer) -> Counter[tuple[str, str]]:
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


@contextlib.contextmanager
def _checkpoints(spec: dict[str, Any]) -> Iterator[Any]:
    """The spec's graph on the test database's checkpoints, to read what runs saved."""
    with PostgresSaver.from_conn_string(postgres_conninfo(connection.settings_dict)) as saver:
        compiled = compile_workflow(validate_spec(spec), state_keys=["user_input"])
        yield compiled.graph.copy(update={"checkpointer": saver})


def _name(proc: subprocess.Popen[bytes]) -> str:
    """A worker process's name in the executions table (executions.services.worker_name)."""
    return f"{socket.gethostname()}:{proc.pid}"


KILLS = 3


@pytest.fixture
def holding() -> Iterator[HoldingOpenAI]:
    with HoldingOpenAI() as server:
        yield server


def _kill_in_flight(
    stack: Stack, worker: Any, holding: HoldingOpenAI, graph: Any, ids: list[str], kill: int
) -> None:
    """Once every run waits on the call of its node n<kill + 1> from `worker` (held by the fake)
    and has the answers of n1..n<kill> saved in its checkpoint: kill the worker."""
    holding.wait_arrived([(marker, f"n{kill + 1}") for marker in _markers(RUNS)], WAIT)
    before = {f"n{step}" for step in range(1, kill + 1)}
    wait_for(
        lambda: all(_saved_nodes(graph, i) >= before for i in ids),
        WAIT,
        f"the answers of {sorted(before)} saved in every run",
    )
    held = Execution.objects.filter(pk__in=ids, status="running", worker=_name(worker))
    assert held.count() == RUNS  # all in flight here: the kill interrupts each
    stack.kill(worker)
    time.sleep(0.5)  # what the dead process had sent is in (or not) by now


def _markers(count: int, prefix: str = "run") -> list[str]:
    return [f"{prefix}-{i:02d}" for i in range(count)]


def test_twenty_runs_in_flight_survive_three_kills_of_their_worker(
    tmp_path: Path, key, holding: HoldingOpenAI
) -> None:
    """Three times, every run is in flight on one worker (the fake holds the call of its node
    n<k+1>; n1..n<k> are saved): the worker is killed and a new one started. All end
    succeeded, each resumed from its checkpoint: no saved answer is asked again."""
    with (
        _stack(tmp_path, holding, AGENTFLOW_HEARTBEAT_STALE="2") as stack,
        _checkpoints(CHAIN) as graph,
    ):
        stack.web()
        worker = stack.worker()
        holding.hold((marker, "n2") for marker in _markers(RUNS))
        markers = {_start_run(stack, key, marker): marker for marker in _markers(RUNS)}
        ids = list(markers)
        saved: list[tuple[dict[str, set[str]], Counter[tuple[str, str]]]] = []
        for kill in range(1, KILLS + 1):
            _kill_in_flight(stack, worker, holding, graph, ids, kill)
            saved.append(({i: _saved_nodes(graph, i) for i in ids}, _calls(holding)))
            if kill < KILLS:
                holding.hold((marker, f"n{kill + 2}") for marker in markers.values())
            holding.release((marker, f"n{kill + 1}") for marker in markers.values())
            worker = stack.worker()  # takes the runs over once their heartbeat has gone stale
        rows = Execution.objects.filter(pk__in=ids)
        finished = rows.filter(status__in=FINISHED)
        wait_for(lambda: finished.count() == RUNS, WAIT, "every run to end on the last worker")

    runs = {run.id: run for run in rows}
    assert {i: runs[i].status for i in ids} == dict.fromkeys(ids, "succeeded"), {
        i: runs[i].error for i in ids if runs[i].status != "succeeded"
    }
    calls = _calls(holding)
    for execution_id, marker in markers.items():
        run = runs[execution_id]
        assert run.final_state is not None
        assert run.final_state["text_result"] == f"echo: step {STEPS} of {marker}"
        assert (run.worker, run.deliveries) == (_name(worker), KILLS + 1)
        for at_kill, calls_then in saved:  # saved at a kill: never asked again after it
            for node in at_kill[execution_id]:
                assert calls[marker, node] == calls_then[marker, node], (marker, node)
        # each node asked once, and once more for the one in flight at each kill
        steps = [f"n{step}" for step in range(1, STEPS + 1)]
        expected = {node: 2 if 2 <= int(node[1:]) <= KILLS + 1 else 1 for node in steps}
        assert {node: calls[marker, node] for node in steps} == expected, marker
    assert sum(calls.values()) == RUNS * (STEPS + KILLS)


TERM_RUNS = 10
GRACE = 1.0
STALE = 600
"""Far beyond the test's waits: only the hand-back can explain a run taken over in time."""


def test_sigterm_to_a_worker_s_process_group_hands_its_runs_to_another_at_once(
    tmp_path: Path, key, holding: HoldingOpenAI
) -> None:
    """What systemd does by default (KillMode=control-group): SIGTERM to every process of the
    worker, whose runs all wait on a provider call (held by the fake). It stops within its
    grace, and the other worker resumes its runs at once from their checkpoints, not after
    the stale interval."""
    extra = {"AGENTFLOW_HEARTBEAT_STALE": str(STALE), "AGENTFLOW_WORKER_GRACE": str(GRACE)}
    names = _markers(TERM_RUNS, "term")
    with _stack(tmp_path, holding, **extra) as stack, _checkpoints(CHAIN) as graph:
        stack.web()
        first = stack.worker()
        holding.hold((marker, "n2") for marker in names)
        markers = {_start_run(stack, key, marker): marker for marker in names}
        holding.wait_arrived([(marker, "n2") for marker in names], WAIT)
        wait_for(
            lambda: all(_saved_nodes(graph, i) == {"n1"} for i in markers),
            WAIT,
            "n1's answer saved in every run",
        )
        rows = Execution.objects.filter(pk__in=list(markers))
        assert rows.filter(status="running", worker=_name(first)).count() == TERM_RUNS
        second = stack.worker()
        registered = Worker.objects.filter(pk=_name(second))
        wait_for(registered.exists, WAIT, "the second worker")

        os.killpg(first.pid, signal.SIGTERM)
        termed = time.monotonic()
        assert first.wait(timeout=WAIT) == 0
        stopped_in = time.monotonic() - termed
        taken = rows.filter(worker=_name(second))
        wait_for(lambda: taken.count() == TERM_RUNS, WAIT, "the second worker to take every run")
        taken_in = time.monotonic() - termed
        saved = {i: _saved_nodes(graph, i) for i in markers}
        holding.release((marker, "n2") for marker in names)
        finished = rows.filter(status__in=FINISHED)
        wait_for(lambda: finished.count() == TERM_RUNS, WAIT, "every run to end")

    assert stopped_in < GRACE + 30, stopped_in  # its grace, the hand-back, a busy machine
    assert taken_in < STALE / 4, taken_in
    runs = {run.id: run for run in rows}
    assert {i: runs[i].status for i in markers} == dict.fromkeys(markers, "succeeded"), {
        i: runs[i].error for i in markers if runs[i].status != "succeeded"
    }
    calls = _calls(holding)
    for execution_id, marker in markers.items():
        run = runs[execution_id]
        assert (run.worker, run.deliveries) == (_name(second), 2)
        assert run.final_state is not None
        assert run.final_state["text_result"] == f"echo: step {STEPS} of {marker}"
        assert saved[execution_id] == {"n1"}, (marker, saved[execution_id])
        assert calls[marker, "n1"] == 1  # saved: not asked again
        assert calls[marker, "n2"] == 2  # in flight when handed back
