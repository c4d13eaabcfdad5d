"""Runs survive the database going away under their worker: a TCP proxy in front of the real
PostgreSQL is cut for 5 s while 5 runs are in the middle of their chains. The worker stops them
at once (nothing is called with nothing recorded), takes them up again when the database is
back, and resumes each from its last checkpoint: every run succeeds and no node whose answer was
saved before the cut is called again."""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from django.db import connection, transaction

from executions.models import Execution, NodeRun
from executions.services import execution_create
from executions.tasks import enqueue_run
from tests.conftest import IN_CI, issue_key
from tests.executions.test_background import CHAIN
from tests.fakes.providers import FakeOpenAIServer
from tests.proxy import Proxy
from tests.stack import Stack, stack_env, wait_for
from workflows.services import workflow_validate

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
RUNS = 5


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("fault tests need PostgreSQL (DATABASE_URL) under CI")
        pytest.skip("fault tests need PostgreSQL")
    db = connection.settings_dict
    with Proxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as proxy:
        yield proxy


@pytest.fixture
def stack(tmp_path: Path, proxy: Proxy, openai_server: FakeOpenAIServer) -> Iterator[Stack]:
    env = stack_env(
        tmp_path,
        port=proxy.port,  # the worker reaches the database through the proxy only
        AGENTFLOW_PROVIDER_BASE_URLS=f'{{"openai": "{openai_server.base_url}"}}',
        OPENAI_API_KEY="sk-test-faults-0123456789",
        AGENTFLOW_HEARTBEAT_STALE="2",
        AGENTFLOW_WORKER_POLL="0.5",
    )
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop()


def test_a_database_outage_under_a_worker_repeats_no_saved_answer(
    stack: Stack, proxy: Proxy, openai_server: FakeOpenAIServer, tenant, settings
) -> None:
    settings.AGENTFLOW_HEARTBEAT_STALE = 2
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    openai_server.script(times=1000, delay=1.0)
    validated = workflow_validate(spec=CHAIN, tenant=tenant)
    ids = []
    for i in range(RUNS):
        with transaction.atomic():
            state = {"user_input": f"run-{i}"}
            run = execution_create(
                tenant=tenant, validated=validated, mode="async", initial_state=state
            )
            enqueue_run(run.id)
        ids.append(run.id)
    stack.worker()
    done_n2 = NodeRun.objects.filter(execution_id__in=ids, node_id="n2", status="succeeded")
    wait_for(lambda: done_n2.count() == RUNS, 120, "n2 to finish in every run")
    # n1's result is in each run's checkpoint now (LangGraph writes a step's checkpoint while
    # the next one runs: a second later it is long written)
    proxy.cut()
    time.sleep(5)
    proxy.restore()
    ended = Execution.objects.filter(pk__in=ids, status__in=["succeeded", "failed", "cancelled"])
    wait_for(lambda: ended.count() == RUNS, 180, "every run to end after the outage")
    runs = {run.pk: run for run in Execution.objects.filter(pk__in=ids)}
    assert {pk: run.status for pk, run in runs.items()} == dict.fromkeys(ids, "succeeded"), {
        pk: run.error for pk, run in runs.items() if run.status != "succeeded"
    }
    calls = Counter(r.json["messages"][-1]["content"] for r in openai_server.requests)
    for i in range(RUNS):
        assert calls[f"step 1: run-{i}"] == 1  # saved before the cut: never asked again
        assert all(calls[f"step {n}: run-{i}"] in (1, 2) for n in range(2, 6)), calls
        final = runs[ids[i]].final_state or {}
        assert final["text_result"] == f"echo: step 5: run-{i}"


@pytest.fixture
def web_stack(tmp_path: Path, proxy: Proxy, openai_server: FakeOpenAIServer) -> Iterator[Stack]:
    env = stack_env(
        tmp_path,
        port=proxy.port,  # the web process reaches the database through the proxy only
        AGENTFLOW_PROVIDER_BASE_URLS=f'{{"openai": "{openai_server.base_url}"}}',
        OPENAI_API_KEY="sk-test-faults-0123456789",
    )
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop()


def test_a_sync_run_that_loses_the_database_stops_and_says_which_run_it_was(
    web_stack: Stack, proxy: Proxy, openai_server: FakeOpenAIServer, tenant
) -> None:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    key = issue_key(tenant, "executor")
    openai_server.script(times=1000, delay=1.0)
    web_stack.web()
    cut = threading.Timer(1.5, proxy.cut)  # in the middle of the second call
    cut.start()
    try:
        answer = httpx2.post(
            f"{web_stack.url}/api/v1/workflows/execute",
            json={"workflow": CHAIN, "initial_state": {"user_input": "sync"}},
            headers={"X-API-Key": key.secret},
            timeout=60,
        )
        calls_then = len(openai_server.requests)
        time.sleep(3)  # were the run to go on, its next calls would come now
        calls_later = len(openai_server.requests)
    finally:
        cut.cancel()
        proxy.restore()
    assert answer.status_code == 500, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"].endswith("run_interrupted")
    assert body["execution_id"].startswith("exec_")
    assert body["execution_id"] in body["detail"]
    assert calls_later == calls_then <= 2  # stopped: no node called after the answer
