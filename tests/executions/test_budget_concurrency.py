"""A daily budget is one bound for the tenant, however many runs it starts at once (issue 14).

Twelve runs are sent at once to a real server (uvicorn, PostgreSQL, the default connection pool)
through `POST /api/v1/workflows/execute`, each making one call of 18 tokens against a budget of
100 tokens: 5 calls fit (90 tokens), a sixth may start while 90 < 100 (the one reservation in
doubt), no more. The fake provider holds every answer until each run that is not in a call has
finished: every run decides while the admitted calls are in flight, the case where runs that each
took a snapshot of what was left at their start all called (12 calls, 216 tokens).
"""

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import override_settings

from executions.models import DailyUsage, NodeRun
from tenants.models import Tenant
from tests.conftest import IN_CI, IssuedKey, issue_key
from tests.fakes.providers import COMPLETION_TOKENS, PROMPT_TOKENS, FakeOpenAIServer
from tests.fakes.server import Behaviour, RecordedRequest, Reply
from tests.stack import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RUNS = 12
CALL = PROMPT_TOKENS + COMPLETION_TOKENS  # 18 tokens, what each call uses
BUDGET = 100
"""Five calls fit; a sixth may start at 90 (under 100) and end at 108."""
PROMPT = "x" * (PROMPT_TOKENS * 4)  # estimated at 11 tokens: with max_tokens 7, 18 reserved
SPEC = {
    "name": "one-call",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "w",
            "type": "llm",
            "metadata": {
                "source": "gpt",
                "prompt": "{{ user_input }}",
                "max_tokens": COMPLETION_TOKENS,
            },
        },
    ],
    "edges": [{"from": "input", "to": "w"}],
    "sources": [
        {
            "id": "gpt",
            "kind": "openai",
            "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
        }
    ],
}


DATABASE_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "agentflow_cache",
    }
}


class HeldOpenAI(FakeOpenAIServer):
    """Holds each chat answer until `release` is set (or three minutes have passed)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def _route(self, request: RecordedRequest, behaviour: Behaviour) -> Reply:
        if request.path.endswith("/chat/completions"):
            self.release.wait(180)
        return super()._route(request, behaviour)


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("the concurrent budget runs on PostgreSQL (DATABASE_URL) under CI")
        pytest.skip("a second process shares the test database on PostgreSQL only")


@pytest.fixture(params=["redis", "database"])
def backend(request: pytest.FixtureRequest) -> str:
    """Where the day's count is kept: Redis, or the database (no REDIS_URL)."""
    return str(request.param)


@pytest.fixture
def provider() -> Iterator[HeldOpenAI]:
    with HeldOpenAI() as server:
        yield server
        server.release.set()


@pytest.fixture
def executor(tenant: Tenant) -> IssuedKey:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.daily_token_budget = BUDGET
    tenant.save()
    return issue_key(tenant, "executor")


@pytest.fixture
def server(
    request: pytest.FixtureRequest,
    backend: str,
    provider: HeldOpenAI,
    tenant: Tenant,
    tmp_path: Path,
    django_db_setup: None,
) -> Iterator[Stack]:
    redis_url = request.getfixturevalue("requires_redis") if backend == "redis" else ""
    if redis_url:  # a count left by an earlier test database's tenant of the same id
        with redis.Redis.from_url(redis_url) as client:
            client.delete(_redis_key(tenant))
    else:  # without Redis the server's cache (throttles) is a table too
        with override_settings(CACHES=DATABASE_CACHE):
            call_command("createcachetable")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on 127.0.0.1
        "DJANGO_SECRET_KEY": "budget-" + "k" * 60,
        "AGENTFLOW_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "AGENTFLOW_PROVIDER_BASE_URLS": json.dumps({"openai": provider.base_url}),
        "OPENAI_API_KEY": "sk-test-budget-0123456789",
    }
    stack = Stack(env, tmp_path)
    stack.web()
    yield stack
    provider.release.set()
    stack.stop()


def _redis_key(tenant: Tenant) -> str:
    return f"agentflow:budget:t{tenant.pk}:{datetime.now(UTC).date().isoformat()}"


def _execute(stack: Stack, key: IssuedKey) -> Any:
    body = {"workflow": SPEC, "initial_state": {"user_input": PROMPT}, "mode": "sync"}
    answer = httpx2.post(
        f"{stack.url}/api/v1/workflows/execute",
        content=json.dumps(body),
        headers={"X-API-Key": key.secret, "Content-Type": "application/json"},
        timeout=120,
    )
    return answer.json() if answer.status_code == 200 else {"http": answer.text}


def _run_at_once(stack: Stack, key: IssuedKey, provider: HeldOpenAI) -> list[Any]:
    """The answers of RUNS runs sent at once; the provider's answers are held until every run
    that is not in a call has finished."""
    answers: list[Any] = []
    start = threading.Barrier(RUNS)

    def one() -> None:
        start.wait()
        answers.append(_execute(stack, key))

    threads = [threading.Thread(target=one) for _ in range(RUNS)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(answers) + len(provider.requests) >= RUNS, 120, "every run to decide")
    provider.release.set()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def _counted(backend: str, tenant: Tenant) -> int:
    if backend == "database":
        return DailyUsage.objects.get(tenant=tenant, day=datetime.now(UTC).date()).tokens
    with redis.Redis.from_url(os.environ.get("REDIS_URL", "")) as client:
        return int(client.hget(_redis_key(tenant), "tokens") or 0)


def test_concurrent_runs_spend_the_budget_once(
    backend: str, server: Stack, provider: HeldOpenAI, executor: IssuedKey, tenant: Tenant
) -> None:
    started = time.monotonic()
    answers = _run_at_once(server, executor, provider)
    assert len(answers) == RUNS, f"{RUNS - len(answers)} runs never answered"
    assert [a for a in answers if "http" in a] == []

    calls = len(provider.requests)
    succeeded = [a for a in answers if a["status"] == "success"]
    refused = [a for a in answers if a["status"] != "success"]
    assert calls <= 6, f"{calls} calls reached the provider for a budget of 5 (+1)"
    assert calls >= 5  # what fits was not refused: each reserved exactly what it used
    assert len(succeeded) == calls  # a refused run made no call
    assert {a["error"]["code"] for a in refused} == {"budget_exceeded"}
    assert all("budget" in a["error"]["message"] for a in refused)

    used = sum(a["tokens_used"] for a in answers)
    assert used == calls * CALL <= BUDGET + CALL  # over by at most the one call in doubt
    # The count holds what the calls used, nothing they reserved, as the trace records it.
    recorded = NodeRun.objects.filter(execution__tenant=tenant).aggregate(n=Sum("tokens"))["n"]
    assert _counted(backend, tenant) == recorded == used
    print(
        f"\n{backend}: {calls} calls, {len(refused)} refused, {used} tokens, "
        f"{time.monotonic() - started:.1f} s"
    )
