"""Background runs on real django-q2 worker processes and a real uvicorn server, on PostgreSQL.

The workers and the server are started here against the test database; the API is called over
HTTP as a user would. Runs that survive a SIGKILL, cancellation, server-sent events.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from executions.models import Execution, NodeRun
from executions.tasks import reap_stale_runs
from tests.conftest import IssuedKey, issue_key
from tests.fakes.providers import FakeOpenAIServer
from tests.stack import Stack, stack_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stack(tmp_path: Path, openai_server: FakeOpenAIServer) -> Iterator[Stack]:
    env = stack_env(
        tmp_path,
        AGENTFLOW_PROVIDER_BASE_URLS=json.dumps({"openai": openai_server.base_url}),
        OPENAI_API_KEY="sk-test-background-0123456789",
        AGENTFLOW_HEARTBEAT_STALE="2",
        Q_WORKERS="1",
    )
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop()


CHAIN = {
    "name": "five-calls",
    "start_node": "input",
    "nodes": [{"id": "input", "type": "input"}]
    + [
        {
            "id": f"n{i}",
            "type": "llm",
            "metadata": {"source": "gpt", "prompt": f"step {i}: {{{{ user_input }}}}"},
        }
        for i in range(1, 6)
    ],
    "edges": [{"from": "input", "to": "n1"}]
    + [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(1, 5)],
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
def key(tenant) -> IssuedKey:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    return issue_key(tenant, "developer")


def _post(stack: Stack, key: IssuedKey, path: str, body: dict[str, Any], **headers: str) -> Any:
    return httpx2.post(
        f"{stack.url}{path}", json=body, timeout=30, headers={"X-API-Key": key.secret, **headers}
    )


def _status(execution_id: str) -> str:
    return str(Execution.objects.get(pk=execution_id).status)


def test_a_run_survives_its_worker_being_killed_mid_node(
    stack: Stack, key, openai_server, settings
) -> None:
    settings.AGENTFLOW_HEARTBEAT_STALE = 2  # as the workers have it
    openai_server.script(times=10, delay=0.8)
    stack.web()
    first = stack.worker()
    answer = _post(
        stack,
        key,
        "/api/v1/workflows/execute",
        {"workflow": CHAIN, "initial_state": {"user_input": "go"}, "mode": "async"},
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/api/v1/executions/{answer.json()['execution_id']}"
    execution_id = answer.json()["execution_id"]
    wait_for(
        lambda: NodeRun.objects.filter(execution_id=execution_id, node_id="n3").exists(),
        60,
        "node 3 to start",
    )
    stack.kill(first)  # SIGKILL, the whole cluster, in the middle of node 3
    assert _status(execution_id) == "running"
    time.sleep(2.5)  # the heartbeat goes stale
    assert reap_stale_runs() == 1  # what the every-minute schedule does: queue a resume
    stack.worker()
    wait_for(lambda: _status(execution_id) in ("succeeded", "failed"), 60, "the resumed run")
    run = Execution.objects.get(pk=execution_id)
    assert run.status == "succeeded", run.error
    assert run.final_state is not None
    assert run.final_state["text_result"].startswith("echo: step 5:")
    answered = [r.json["messages"][-1]["content"].split(":")[0] for r in openai_server.answered]
    assert sorted(answered) == ["step 1", "step 2", "step 3", "step 4", "step 5"]  # one each
    calls = [r.json["messages"][-1]["content"].split(":")[0] for r in openai_server.requests]
    assert calls.count("step 1") == calls.count("step 2") == 1  # recorded: never called again
    assert run.deliveries == 2
    lost = NodeRun.objects.get(execution_id=execution_id, node_id="n3", status="failed")
    assert lost.error is not None and lost.error["code"] == "worker_lost"


def test_events_stream_live_and_replay_after_last_event_id(
    stack: Stack, key, openai_server
) -> None:
    openai_server.script(times=10, delay=0.2)
    stack.web()
    stack.worker()
    answer = _post(
        stack,
        key,
        "/api/v1/workflows/execute",
        {"workflow": CHAIN, "initial_state": {"user_input": "go"}, "mode": "async"},
    )
    execution_id = answer.json()["execution_id"]
    events = _sse(stack, key, execution_id)
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "node_started" and kinds[-1] == "end"
    assert kinds.count("node_finished") == 6
    assert events[-1][2]["status"] == "succeeded"
    finished = [data for _, kind, data in events if kind == "node_finished"]
    assert all(f["tokens"] > 0 for f in finished[1:])
    middle = events[4][0]
    # as a browser's EventSource asks: it accepts text/event-stream and nothing else
    replay = _sse(stack, key, execution_id, last_event_id=middle, accept="text/event-stream")
    assert [e[0] for e in replay] == [e[0] for e in events if e[0] > middle]
    missing = httpx2.get(
        f"{stack.url}/api/v1/executions/exec_{'0' * 24}/events",
        headers={"X-API-Key": key.secret, "Accept": "text/event-stream"},
        timeout=30,
    )
    assert missing.status_code == 404 and missing.json()["status"] == 404


def _sse(
    stack: Stack,
    key: IssuedKey,
    execution_id: str,
    last_event_id: int | None = None,
    accept: str = "*/*",
) -> list:
    headers = {"X-API-Key": key.secret, "Accept": accept}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    url = f"{stack.url}/api/v1/executions/{execution_id}/events"
    found: list[tuple[int, str, Any]] = []
    with httpx2.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        block: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                block[name] = value
                continue
            if "event" in block:
                found.append((int(block["id"]), block["event"], json.loads(block["data"])))
            block = {}
    return found


def test_cancel_stops_a_running_run_and_keeps_its_partial_state(
    stack: Stack, key, openai_server
) -> None:
    openai_server.script(times=10, delay=1.0)
    stack.web()
    stack.worker()
    answer = _post(
        stack,
        key,
        "/api/v1/workflows/execute",
        {"workflow": CHAIN, "initial_state": {"user_input": "go"}, "mode": "async"},
    )
    execution_id = answer.json()["execution_id"]
    wait_for(
        lambda: NodeRun.objects.filter(execution_id=execution_id, node_id="n2").exists(),
        60,
        "node 2 to start",
    )
    start = time.monotonic()
    cancelled = _post(stack, key, f"/api/v1/executions/{execution_id}/cancel", {})
    took = time.monotonic() - start
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert took < 20  # the chain's remaining nodes alone would take far longer
    run = Execution.objects.get(pk=execution_id)
    assert run.error is not None and run.error["code"] == "cancelled"
    assert run.final_state is not None
    assert run.final_state["outputs"]["n1"].startswith("echo: step 1")
    again = _post(stack, key, f"/api/v1/executions/{execution_id}/cancel", {})
    assert again.status_code == 409


ONE_CALL = {
    **CHAIN,
    "name": "one-call",
    "nodes": CHAIN["nodes"][:2],
    "edges": CHAIN["edges"][:1],
}


def test_one_worker_process_runs_many_runs_at_once(stack: Stack, key, openai_server) -> None:
    openai_server.script(times=12, delay=3.0)  # long enough that the runs must overlap
    stack.web()
    body = {"workflow": ONE_CALL, "initial_state": {"user_input": "go"}, "mode": "async"}
    ids = [
        _post(stack, key, "/api/v1/workflows/execute", body).json()["execution_id"]
        for _ in range(12)
    ]
    stack.worker()  # all twelve are queued when it starts
    wait_for(
        lambda: Execution.objects.filter(pk__in=ids, status="succeeded").count() == 12,
        120,
        "the twelve runs",
    )
    assert len(set(Execution.objects.filter(pk__in=ids).values_list("worker", flat=True))) == 1
    calls = NodeRun.objects.filter(execution_id__in=ids, node_id="n1")
    starts = [(c.started_at.timestamp(), c.duration or 0.0) for c in calls]
    spans = [(start, start + took) for start, took in starts]
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    at_once = peak = 0
    for _, step in edges:
        at_once += step
        peak = max(peak, at_once)
    assert peak == 12  # one process, every call waiting on the provider together
