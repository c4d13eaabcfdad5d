"""No node starts after a cancel was accepted: the run asks before each node starts, and the
answer is read after the cancel's commit.

The fake provider holds one chosen call of each run (node n<k>) until the test lets it go; the
test cancels the run through the API, waits until the cancel is committed, waits 0-0.4 s more,
then lets the held call answer. Node n<k+1> can only be decided after that answer, so after the
cancel was accepted: it must never start (no trace row, no provider call), whether the cancel
reached the run while n<k> was in flight or as it finished. A call decided before the cancel
and still on its way to the provider would be legitimate; this construction leaves none.
Background runs go through a real worker process; sync runs through the API in this process.
"""

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django.db import connections
from django.test import override_settings

from executions.models import Execution, NodeRun
from tests.conftest import IssuedKey, client_for, issue_key
from tests.fakes.holding import HoldingOpenAI
from tests.stack import Stack, stack_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STEPS = 5
WAIT = 120
"""Generous: the machine may be busy (bounds, not timings under test)."""
PAUSES = (0.0, 0.0, 0.02, 0.05, 0.1, 0.2, 0.4)
"""Seconds between the cancel's commit and the held call's answer: at once (the answer races the
worker's periodic cancel check, as a node finishing does), or later (the call is in flight)."""

CHAIN = {
    "name": "five-calls",
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
def holding() -> Iterator[HoldingOpenAI]:
    with HoldingOpenAI() as server:
        yield server


@pytest.fixture
def key(tenant) -> IssuedKey:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    return issue_key(tenant, "developer")


def _committed(execution_id: str) -> None:
    """Until the cancel request is committed (looked for every 5 ms: the answer must race the
    worker's own periodic look, not come long after it)."""
    deadline = time.monotonic() + WAIT
    asked = Execution.objects.filter(pk=execution_id, cancel_requested=True)
    while not asked.exists():
        assert time.monotonic() < deadline, f"the cancel of {execution_id} was never committed"
        time.sleep(0.005)


def _cancel_as_it_finishes(
    server: HoldingOpenAI, cancel: Any, execution_id: str, marker: str, held: str, pause: float
) -> int:
    """Cancel while `held` is in flight; let it answer `pause` s after the cancel committed."""
    try:
        assert server.arrived[marker, held].wait(WAIT), f"{marker} never called {held}"
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(_closing, cancel, execution_id)
            _committed(execution_id)
            time.sleep(pause)
            server.released[marker, held].set()
            return int(answer.result(timeout=WAIT))
    finally:
        server.released[marker, held].set()


def _closing(work: Any, *args: Any) -> Any:
    """`work` on a thread of a pool: its database connection is closed when it is done (the
    test database is dropped at the end)."""
    try:
        return work(*args)
    finally:
        connections.close_all()


def _assert_nothing_started_after(
    server: HoldingOpenAI, runs: dict[str, tuple[str, int]], answers: list[int]
) -> None:
    """`runs`: execution id -> (marker, k of the held node n<k>)."""
    assert set(answers) <= {200, 202}, answers
    calls = server.calls()
    for execution_id, (marker, k) in runs.items():
        run = Execution.objects.get(pk=execution_id)
        assert run.status == "cancelled", (marker, run.status, run.error)
        traced = dict(NodeRun.objects.filter(execution=run).values_list("node_id", "status"))
        after = [f"n{i}" for i in range(k + 1, STEPS + 1)]
        assert not [n for n in after if n in traced or calls[marker, n]], (marker, k, traced)
        assert traced[f"n{k}"] in {"succeeded", "cancelled"}, (marker, traced)
        for i in range(1, k + 1):  # what ran before the cancel ran once
            assert traced[f"n{i}"] in {"succeeded", "cancelled"}
            assert calls[marker, f"n{i}"] == 1, (marker, i, calls)


@pytest.fixture
def stack(tmp_path: Path, holding: HoldingOpenAI) -> Iterator[Stack]:
    env = stack_env(
        tmp_path,
        AGENTFLOW_PROVIDER_BASE_URLS=json.dumps({"openai": holding.base_url}),
        OPENAI_API_KEY="sk-test-cancel-0123456789",
        AGENTFLOW_WORKER_POLL="0.5",
    )
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop()


RUNS = 21
CANCELLERS = 5


def test_no_node_of_a_background_run_starts_after_its_cancel_was_accepted(
    stack: Stack, key: IssuedKey, holding: HoldingOpenAI
) -> None:
    stack.web()
    stack.worker()
    http = httpx2.Client(base_url=stack.url, headers={"X-API-Key": key.secret}, timeout=WAIT)

    def start(marker: str) -> str:
        body = {"workflow": CHAIN, "initial_state": {"user_input": marker}, "mode": "async"}
        answer = http.post("/api/v1/workflows/execute", json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["execution_id"])

    def cancel(execution_id: str) -> int:
        return http.post(f"/api/v1/executions/{execution_id}/cancel").status_code

    plan = {f"run-{i:02d}": (1 + i % (STEPS - 1), PAUSES[i % len(PAUSES)]) for i in range(RUNS)}
    for marker, (k, _) in plan.items():
        holding.hold([(marker, f"n{k}")])
    runs = {start(marker): (marker, k) for marker, (k, _) in plan.items()}

    def cancel_one(execution_id: str) -> int:
        marker, k = runs[execution_id]
        return _closing(
            _cancel_as_it_finishes, holding, cancel, execution_id, marker, f"n{k}", plan[marker][1]
        )

    # A few at a time: each thread holds a database connection (the pool has 10) while it looks
    # for its cancel's commit; the other runs wait on their held call meanwhile.
    with ThreadPoolExecutor(CANCELLERS) as pool:
        answers = list(pool.map(cancel_one, runs))
    ended = Execution.objects.filter(pk__in=list(runs), status="cancelled")
    wait_for(lambda: ended.count() == RUNS, WAIT, "every run to end cancelled")
    http.close()
    _assert_nothing_started_after(holding, runs, answers)


SYNC_RUNS = 6


def test_no_node_of_a_sync_run_starts_after_its_cancel_was_accepted(
    key: IssuedKey, holding: HoldingOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cancel-0123456789")
    plan = {f"sync-{i}": (1 + i % (STEPS - 1), PAUSES[i % len(PAUSES)]) for i in range(SYNC_RUNS)}
    runs: dict[str, tuple[str, int]] = {}
    answers = []
    with (
        override_settings(AGENTFLOW_PROVIDER_BASE_URLS={"openai": holding.base_url}),
        ThreadPoolExecutor(1) as pool,
    ):
        for marker, (k, pause) in plan.items():
            holding.hold([(marker, f"n{k}")])
            body = {"workflow": CHAIN, "initial_state": {"user_input": marker}, "mode": "sync"}
            request = pool.submit(_closing, _sync_execute, key, body)
            assert holding.arrived[marker, f"n{k}"].wait(WAIT), request.result(timeout=1)
            execution_id = Execution.objects.get(initial_state__user_input=marker).pk
            runs[execution_id] = (marker, k)

            def cancel(execution_id: str) -> int:
                return int(
                    client_for(key).post(f"/api/v1/executions/{execution_id}/cancel").status_code
                )

            answers.append(
                _cancel_as_it_finishes(holding, cancel, execution_id, marker, f"n{k}", pause)
            )
            assert request.result(timeout=WAIT) == 200
    _assert_nothing_started_after(holding, runs, answers)


def _sync_execute(key: IssuedKey, body: dict[str, Any]) -> int:
    answer = client_for(key).post("/api/v1/workflows/execute", body, format="json")
    return int(answer.status_code)
