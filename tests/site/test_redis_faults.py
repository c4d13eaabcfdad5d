"""Redis cut off and stalled under a real web process and run worker, through a TCP proxy in
front of the real Redis (a stall accepts connections and never answers).

- The API keeps answering (throttles and the cache fail open, and say so in the logs), `/health`
  answers within its own bound, 200 `degraded` with Redis named down, and Redis is reported back
  once it is.
- Runs whose queue rate limit and daily budget live in Redis wait through a cut and succeed once
  it is back; no provider call is made while their budget cannot be checked.
- Redis down for longer than a run may wait: the node fails `rate_limited` naming the queue and
  the cause, or `budget_unavailable` naming the cause; no provider call is made unbudgeted.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from executions.models import Execution
from tenants.models import Tenant
from tests.conftest import IssuedKey, issue_key
from tests.fakes.providers import FakeOpenAIServer
from tests.proxy import Proxy
from tests.stack import Stack, stack_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ENDED = ("succeeded", "failed", "cancelled", "timed_out")
LLM = {
    "id": "w",
    "type": "llm",
    "metadata": {"source": "gpt", "prompt": "{{ user_input }}", "max_tokens": 10},
}
SOURCES = [
    {
        "id": "gpt",
        "kind": "openai",
        "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY", "max_retries": 0},
    }
]
PLAIN = {
    "name": "one-call",
    "start_node": "input",
    "nodes": [{"id": "input", "type": "input"}, LLM],
    "edges": [{"from": "input", "to": "w"}],
    "sources": SOURCES,
}
QUEUED = {
    **PLAIN,
    "name": "queued-call",
    "queues": [
        {"id": "lane", "from": "input", "to": "w", "bandwidth": {"max_requests_per_minute": 600}}
    ],
}


@pytest.fixture
def proxy(requires_redis: str) -> Iterator[Proxy]:
    target = urlsplit(requires_redis)
    with Proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        yield proxy


def _stack(tmp_path: Path, proxy: Proxy, openai: FakeOpenAIServer, max_wait: str) -> Stack:
    redis_db = urlsplit(os.environ["REDIS_URL"]).path or "/0"
    env = stack_env(
        tmp_path,
        REDIS_URL=f"redis://127.0.0.1:{proxy.port}{redis_db}",  # Redis through the proxy only
        AGENTFLOW_PROVIDER_BASE_URLS=f'{{"openai": "{openai.base_url}"}}',
        OPENAI_API_KEY="sk-test-redis-faults-0123456789",
        AGENTFLOW_MAX_RATE_WAIT=max_wait,
    )
    return Stack(env, tmp_path)


@pytest.fixture
def patient(tmp_path: Path, proxy: Proxy, openai_server: FakeOpenAIServer) -> Iterator[Stack]:
    stack = _stack(tmp_path, proxy, openai_server, "30")
    yield stack
    stack.stop()


@pytest.fixture
def impatient(tmp_path: Path, proxy: Proxy, openai_server: FakeOpenAIServer) -> Iterator[Stack]:
    stack = _stack(tmp_path, proxy, openai_server, "3")
    yield stack
    stack.stop()


@pytest.fixture
def budgeted(tenant: Tenant) -> IssuedKey:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.daily_token_budget = 1_000_000
    tenant.save()
    return issue_key(tenant, "executor")


def _health(stack: Stack) -> tuple[httpx2.Response, float]:
    start = time.monotonic()
    answer = httpx2.get(f"{stack.url}/health", timeout=30)
    return answer, time.monotonic() - start


def _redis_ok(stack: Stack) -> bool:
    answer, _ = _health(stack)
    return bool(answer.json()["dependencies"]["redis"]["status"] == "ok")


def test_the_api_answers_through_a_redis_cut_and_a_stall(
    patient: Stack, proxy: Proxy, budgeted: IssuedKey
) -> None:
    stack = patient
    stack.web()
    headers = {"X-API-Key": budgeted.secret}
    assert _redis_ok(stack)
    recovered = {}
    for fault in (proxy.cut, proxy.stall):
        fault()
        for _ in range(3):
            me = httpx2.get(f"{stack.url}/api/v1/me", headers=headers, timeout=30)
            assert me.status_code == 200, (fault.__name__, me.status_code, me.text)
            health, took = _health(stack)
            assert health.status_code == 200, health.text  # degraded, still in the balancer
            assert health.json()["status"] == "degraded"
            redis = health.json()["dependencies"]["redis"]
            assert redis["status"] == "down"
            assert redis["latency_ms"] <= 2000  # the probe's own bound, as the server measured
            assert took < 15  # (generous for a loaded machine; the stall is not waited out)
        proxy.restore()
        start = time.monotonic()
        wait_for(lambda: _redis_ok(stack), 30, "Redis to be reported back")
        recovered[fault.__name__] = round(time.monotonic() - start, 2)
    print(f"/health reported Redis back after (s): {recovered}")
    logs = "".join(p.read_text(errors="replace") for p in stack.logs.glob("web-*.log"))
    assert "ConnectionError" in logs and "TimeoutError" in logs  # each fault said so


def _execute(stack: Stack, key: IssuedKey, spec: dict[str, Any], text: str) -> str:
    answer = httpx2.post(
        f"{stack.url}/api/v1/workflows/execute",
        json={"workflow": spec, "initial_state": {"user_input": text}, "mode": "async"},
        headers={"X-API-Key": key.secret},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["execution_id"])


def _ended(ids: list[str]) -> bool:
    return Execution.objects.filter(pk__in=ids, status__in=ENDED).count() == len(ids)


def test_runs_wait_through_a_redis_cut_and_succeed_once_it_is_back(
    patient: Stack, proxy: Proxy, openai_server: FakeOpenAIServer, budgeted: IssuedKey
) -> None:
    stack = patient
    stack.web()
    stack.worker()
    first = _execute(stack, budgeted, QUEUED, "before")
    wait_for(lambda: _ended([first]), 120, "a run before the cut")
    calls_before = len(openai_server.requests)
    proxy.cut()
    ids = [_execute(stack, budgeted, spec, f"cut-{i}") for i, spec in enumerate([QUEUED] * 2)]
    ids.append(_execute(stack, budgeted, PLAIN, "cut-budget-only"))
    time.sleep(5)  # taken by the worker, waiting for Redis
    assert not Execution.objects.filter(pk__in=ids, status__in=ENDED).exists()
    assert len(openai_server.requests) == calls_before  # nothing called unbudgeted
    proxy.restore()
    start = time.monotonic()
    wait_for(lambda: _ended(ids), 60, "the runs to end once Redis is back")
    took = round(time.monotonic() - start, 2)
    print(f"3 runs ended {took} s after Redis came back")
    runs = Execution.objects.filter(pk__in=[first, *ids])
    assert {run.pk: run.status for run in runs} == dict.fromkeys([first, *ids], "succeeded"), {
        run.pk: run.error for run in runs
    }
    assert len(openai_server.requests) == calls_before + 3  # one call each, none repeated


def test_runs_fail_naming_the_cause_when_redis_stays_down(
    impatient: Stack, proxy: Proxy, openai_server: FakeOpenAIServer, budgeted: IssuedKey
) -> None:
    stack = impatient
    stack.web()
    stack.worker()
    first = _execute(stack, budgeted, PLAIN, "before")
    wait_for(lambda: _ended([first]), 120, "a run before the stall")
    calls_before = len(openai_server.requests)
    proxy.stall()
    queued = _execute(stack, budgeted, QUEUED, "stalled-queue")
    plain = _execute(stack, budgeted, PLAIN, "stalled-budget")
    wait_for(lambda: _ended([queued, plain]), 120, "the runs to give up on Redis")
    limited, unchecked = Execution.objects.get(pk=queued), Execution.objects.get(pk=plain)
    assert limited.status == "failed" and unchecked.status == "failed"
    assert limited.error is not None and unchecked.error is not None
    assert limited.error["code"] == "rate_limited", limited.error
    assert "Queue 'lane'" in limited.error["message"]
    assert "did not answer" in limited.error["message"]
    assert unchecked.error["code"] == "budget_unavailable", unchecked.error
    assert "could not be checked" in unchecked.error["message"]
    assert "did not answer" in unchecked.error["message"]
    assert len(openai_server.requests) == calls_before  # no call made unbudgeted
