"""Human approval (issue 19): a run that asks a person waits holding no worker, goes on down the
branch its answer names, survives its worker's restart, and can be cancelled or expire.

Real processes on PostgreSQL (tests/stack.py): uvicorn and `manage.py runworker`, the API
called over HTTP as a user would. The workflows need no provider: an approval between an input
and two template aggregators.
"""

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from executions.models import Execution, ExecutionEvent, NodeRun, Worker
from tenants.models import AuditEvent
from tests.conftest import IssuedKey, issue_key
from tests.stack import Stack, stack_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT = 120
"""Generous: the machine may be busy (bounds, not timings under test)."""


def review_spec(**approval: Any) -> dict[str, Any]:
    return {
        "name": "review-then-publish",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "review",
                "type": "approval",
                "metadata": {"question": "Publish '{{ user_input }}'?", **approval},
            },
            {
                "id": "publish",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "published {{ user_input }}"},
            },
            {
                "id": "discard",
                "type": "aggregator",
                "metadata": {
                    "strategy": "template",
                    "template": "discarded ({{ approval.comment }})",
                },
            },
        ],
        "edges": [
            {"from": "input", "to": "review"},
            {"from": "review", "to": "publish", "condition": "approve"},
            {"from": "review", "to": "discard", "condition": "reject"},
        ],
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    env = stack_env(
        tmp_path,
        AGENTFLOW_HEARTBEAT_STALE="2",
        AGENTFLOW_WORKER_POLL="0.5",
        AGENTFLOW_WORKER_CONCURRENCY="4",
    )
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop()


@pytest.fixture
def key(tenant) -> IssuedKey:
    return issue_key(tenant, "executor")


def _post(stack: Stack, key: IssuedKey, path: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        f"{stack.url}/api/v1{path}", json=body, timeout=30, headers={"X-API-Key": key.secret}
    )


def _get(stack: Stack, key: IssuedKey, path: str) -> httpx2.Response:
    return httpx2.get(f"{stack.url}/api/v1{path}", timeout=30, headers={"X-API-Key": key.secret})


def _start(stack: Stack, key: IssuedKey, marker: str, spec: dict[str, Any] | None = None) -> str:
    answer = _post(
        stack,
        key,
        "/workflows/execute",
        {
            "workflow": spec or review_spec(),
            "initial_state": {"user_input": marker},
            "mode": "async",
        },
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["execution_id"])


def _status(execution_id: str) -> str:
    return str(Execution.objects.get(pk=execution_id).status)


def _waits(execution_id: str) -> None:
    wait_for(lambda: _status(execution_id) == "waiting", WAIT, f"{execution_id} to wait")


def _ends(execution_id: str) -> Execution:
    finished = ("succeeded", "failed", "timed_out", "cancelled")
    wait_for(lambda: _status(execution_id) in finished, WAIT, f"{execution_id} to end")
    return Execution.objects.get(pk=execution_id)


def _waiting_events(stack: Stack, key: IssuedKey, execution_id: str) -> list[tuple[str, Any]]:
    """The run's server-sent events up to its `run_waiting` (its stream stays open after it)."""
    url = f"{stack.url}/api/v1/executions/{execution_id}/events"
    found: list[tuple[str, Any]] = []
    with httpx2.stream("GET", url, headers={"X-API-Key": key.secret}, timeout=60) as response:
        block: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                block[name] = value
                continue
            if "event" in block:
                found.append((block["event"], json.loads(block["data"])))
                if block["event"] == "run_waiting":
                    return found
            block = {}
    return found


def test_a_waiting_run_holds_no_worker_and_each_answer_takes_its_branch(
    stack: Stack, key: IssuedKey, viewer_key: IssuedKey
) -> None:
    stack.web()
    worker = stack.worker()
    approved, rejected = _start(stack, key, "the memo"), _start(stack, key, "the draft")
    _waits(approved)
    _waits(rejected)

    # No worker holds them: the worker's row counts no run, its capacity is free.
    row = wait_for(
        lambda: Worker.objects.filter(running=0, capacity=4).first(), WAIT, "a worker with 0 runs"
    )
    assert row.name.endswith(f":{worker.pid}")
    run = Execution.objects.get(pk=approved)
    assert (run.worker, run.heartbeat_at) == ("", None)
    first_started = run.started_at

    shown = _get(stack, key, f"/executions/{approved}").json()
    assert shown["status"] == "waiting"
    assert shown["waiting_for"]["node_id"] == "review"
    assert shown["waiting_for"]["question"] == "Publish 'the memo'?"
    assert shown["waiting_for"]["options"] == ["approve", "reject"]
    assert shown["waiting_for"]["expires_at"] is None
    review = [n for n in shown["nodes"] if n["node_id"] == "review"]
    assert [n["status"] for n in review] == ["waiting"]
    events = _waiting_events(stack, key, approved)
    assert events[-1] == (
        "run_waiting",
        {
            "node_id": "review",
            "question": "Publish 'the memo'?",
            "options": ["approve", "reject"],
            "expires_at": None,
        },
    )

    # Who may answer, and what.
    path = f"/executions/{approved}/resume"
    assert _post(stack, viewer_key, path, {"answer": "approve"}).status_code == 403
    bad = _post(stack, key, path, {"answer": "maybe"})
    assert bad.status_code == 422, bad.text
    assert "answer" in bad.text
    assert _post(stack, key, path, {}).status_code in (400, 422)
    assert _status(approved) == "waiting"

    answer = _post(stack, key, path, {"answer": "approve", "comment": "fine"})
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/api/v1/executions/{approved}"
    again = _post(stack, key, path, {"answer": "approve", "comment": "fine"})
    assert again.status_code == 202, again.text  # the same answer twice: nothing more
    no = _post(stack, key, f"/executions/{rejected}/resume", {"answer": "reject", "comment": "no"})
    assert no.status_code == 202, no.text

    published, discarded = _ends(approved), _ends(rejected)
    assert published.final_state is not None and discarded.final_state is not None
    assert published.started_at == first_started  # its trace's offsets stay positive
    assert published.status == "succeeded", published.error
    assert discarded.status == "succeeded", discarded.error
    assert published.final_state["final_output"] == "published the memo"
    assert discarded.final_state["final_output"] == "discarded (no)"
    assert published.final_state["approval"]["answer"] == "approve"
    assert published.final_state["approval"]["by"] == f"key:{key.prefix}"
    audited = AuditEvent.objects.filter(action="execution.resume", target_id=approved)
    assert list(audited.values_list("actor", flat=True)) == [f"key:{key.prefix}"]
    assert discarded.final_state["intent"] == "reject"
    ran = list(NodeRun.objects.filter(execution_id=approved).values_list("node_id", "status"))
    assert ran == [
        ("input", "succeeded"),
        ("review", "waiting"),
        ("review", "succeeded"),
        ("publish", "succeeded"),
    ]
    kinds = list(
        ExecutionEvent.objects.filter(execution_id=approved).values_list("kind", flat=True)
    )
    assert kinds.count("run_waiting") == kinds.count("run_resumed") == 1
    assert kinds[-1] == "end"
    detail = _get(stack, key, f"/executions/{approved}").json()
    assert detail["waiting_for"] is None
    assert [n["loop_pass"] for n in detail["nodes"] if n["node_id"] == "review"] == [1, 1]

    late = _post(stack, key, path, {"answer": "reject"})
    assert late.status_code == 409, late.text  # it does not wait any more


def test_a_worker_restarted_while_the_run_waits_still_resumes_it(
    stack: Stack, key: IssuedKey
) -> None:
    stack.web()
    first = stack.worker()
    execution_id = _start(stack, key, "the plan")
    _waits(execution_id)
    stack.kill(first)  # SIGKILL
    time.sleep(3)  # longer than the heartbeat's stale interval: a waiting run is not lost
    second = stack.worker()
    wait_for(lambda: Worker.objects.filter(name__endswith=f":{second.pid}").exists(), WAIT, "w2")
    time.sleep(3)
    assert _status(execution_id) == "waiting"
    second.send_signal(signal.SIGTERM)  # a clean stop too, then a third worker
    second.wait(timeout=60)
    stack.worker()
    answer = _post(stack, key, f"/executions/{execution_id}/resume", {"answer": "approve"})
    assert answer.status_code == 202, answer.text
    run = _ends(execution_id)
    assert run.status == "succeeded", run.error
    assert run.final_state is not None
    assert run.final_state["final_output"] == "published the plan"
    assert run.deliveries == 1  # taken up once since its answer


def test_a_waiting_run_is_cancelled_at_once(stack: Stack, key: IssuedKey) -> None:
    stack.web()
    stack.worker()
    execution_id = _start(stack, key, "the note")
    _waits(execution_id)
    cancelled = _post(stack, key, f"/executions/{execution_id}/cancel", {})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    run = Execution.objects.get(pk=execution_id)
    assert run.final_state is not None and run.final_state["user_input"] == "the note"
    assert ExecutionEvent.objects.filter(execution_id=execution_id, kind="end").count() == 1
    late = _post(stack, key, f"/executions/{execution_id}/resume", {"answer": "approve"})
    assert late.status_code == 409


def test_an_expired_wait_fails_or_takes_its_on_expiry_branch(stack: Stack, key: IssuedKey) -> None:
    stack.web()
    stack.worker()
    fails = _start(stack, key, "a", review_spec(expires_after_seconds=1))
    rejects = _start(stack, key, "b", review_spec(expires_after_seconds=1, on_expiry="reject"))
    failed, taken = _ends(fails), _ends(rejects)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == "approval_expired"
    assert taken.status == "succeeded", taken.error
    assert taken.final_state is not None
    assert taken.final_state["final_output"] == "discarded ()"
    assert taken.final_state["approval"]["by"] == "expiry"


def test_a_sync_execute_of_an_approval_is_refused_naming_mode(api, executor_key) -> None:
    api.credentials(HTTP_X_API_KEY=executor_key.secret)
    answer = api.post(
        "/api/v1/workflows/execute",
        {"workflow": review_spec(), "initial_state": {"user_input": "x"}},
        format="json",
    )
    assert answer.status_code == 422, answer.content
    assert "mode" in answer.content.decode()
    assert not Execution.objects.exists()
