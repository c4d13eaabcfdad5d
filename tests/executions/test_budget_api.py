"""Per-tenant daily budgets, usage, and per-key request rates.

The budget's tests run on both places its count can be kept: Redis (REDIS_URL) and the database.
test_budget_concurrency.py holds it against many runs at once.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from executions.models import DailyUsage
from tenants.models import Tenant
from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeOpenAIServer

pytestmark = pytest.mark.django_db
SPEC = {
    "name": "one-call",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {"id": "w", "type": "llm", "metadata": {"source": "gpt", "prompt": "{{ user_input }}"}},
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


def budget_key(tenant: Tenant) -> str:
    return f"agentflow:budget:t{tenant.pk}:{datetime.now(UTC).date().isoformat()}"


def counted_tokens(backend: str, tenant: Tenant) -> int:
    """The day's count the budget holds the tenant to (used + reserved)."""
    if backend == "database":
        return DailyUsage.objects.get(tenant=tenant, day=datetime.now(UTC).date()).tokens
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        return int(client.hget(budget_key(tenant), "tokens") or 0)


@pytest.fixture(params=["redis", "database"])
def backend(request: pytest.FixtureRequest, tenant: Tenant) -> Iterator[str]:
    """Where the day's count is kept: Redis, or the database (no REDIS_URL)."""
    url = request.getfixturevalue("requires_redis") if request.param == "redis" else ""
    if url:  # a count left by an earlier test database's tenant of the same id
        with redis.Redis.from_url(url) as client:
            client.delete(budget_key(tenant))
    with override_settings(REDIS_URL=url):
        yield request.param


@pytest.fixture
def provider(tenant, openai_server: FakeOpenAIServer, monkeypatch):
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-budget-0123456789")
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS={"openai": openai_server.base_url}):
        yield openai_server


def run(key: IssuedKey) -> dict:
    body = {"workflow": SPEC, "initial_state": {"user_input": "hi"}}
    return client_for(key).post("/api/v1/workflows/execute", body, format="json").json()


def test_a_run_over_the_daily_token_budget_fails_before_the_call(
    backend: str, provider: FakeOpenAIServer, admin_key: IssuedKey
) -> None:
    admin = client_for(admin_key)
    answer = admin.put("/api/v1/budget", {"daily_tokens": 20, "daily_cost": None}, format="json")
    assert answer.json() == {"daily_tokens": 20, "daily_cost": None}
    assert run(admin_key)["status"] == "success"  # 18 tokens (the fake's usage)
    assert run(admin_key)["status"] == "success"  # 2 were left: the call may go
    third = run(admin_key)
    assert third["status"] == "failed"
    assert third["error"]["code"] == "budget_exceeded"
    assert "daily token budget" in third["error"]["message"]
    assert len(provider.requests) == 2  # the third call was never made
    usage = admin.get("/api/v1/usage?days=2").json()
    assert usage["today"]["tokens"] == 36
    assert usage["budget"] == {
        "daily_tokens": 20,
        "daily_cost": None,
        "tokens_left": 0,
        "cost_left": None,
    }
    assert len(usage["daily"]) == 2


def test_a_cost_budget_stops_runs_too(
    backend: str, provider: FakeOpenAIServer, admin_key: IssuedKey
) -> None:
    client_for(admin_key).put(
        "/api/v1/budget", {"daily_tokens": None, "daily_cost": "0.000001"}, format="json"
    )
    assert run(admin_key)["status"] == "success"  # 18 tokens of gpt-4o-mini: $0.0000059
    assert run(admin_key)["error"]["code"] == "budget_exceeded"


def test_the_count_keeps_what_calls_used_and_nothing_they_reserved(
    backend: str, provider: FakeOpenAIServer, admin_key: IssuedKey, tenant: Tenant
) -> None:
    client_for(admin_key).put(
        "/api/v1/budget", {"daily_tokens": 20, "daily_cost": None}, format="json"
    )
    provider.script(status=400)  # the first call fails: its reservation (1,001 tokens) goes back
    assert run(admin_key)["error"]["code"] != "budget_exceeded"
    assert counted_tokens(backend, tenant) == 0
    assert run(admin_key)["status"] == "success"
    assert counted_tokens(backend, tenant) == 18  # the real usage replaced the reservation
    assert len(provider.requests) == 2


def test_a_budget_set_during_the_day_counts_what_its_runs_used_before(
    backend: str, provider: FakeOpenAIServer, admin_key: IssuedKey
) -> None:
    assert run(admin_key)["status"] == "success"  # 18 tokens, no budget: nothing counted them
    client_for(admin_key).put(
        "/api/v1/budget", {"daily_tokens": 20, "daily_cost": None}, format="json"
    )
    assert run(admin_key)["status"] == "success"  # the count starts at 18: 2 left
    assert run(admin_key)["error"]["code"] == "budget_exceeded"
    assert len(provider.requests) == 2


def test_only_an_admin_sets_the_budget(developer_key: IssuedKey, viewer_key: IssuedKey) -> None:
    body = {"daily_tokens": 1, "daily_cost": None}
    assert client_for(developer_key).put("/api/v1/budget", body, format="json").status_code == 403
    assert client_for(viewer_key).get("/api/v1/budget").status_code == 403
    assert client_for(viewer_key).get("/api/v1/usage").status_code == 200


def test_a_bad_days_value_names_the_field(viewer_key: IssuedKey) -> None:
    answer = client_for(viewer_key).get("/api/v1/usage?days=500")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "days"


def test_a_key_with_its_own_rate_is_held_to_it(admin_key: IssuedKey) -> None:
    admin = client_for(admin_key)
    made = admin.post(
        "/api/v1/keys", {"name": "slow", "role": "viewer", "rate_limit": "2/min"}, format="json"
    ).json()
    slow = client_for(IssuedKey(row=None, secret=made["key"]))  # type: ignore[arg-type]
    assert [slow.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
    assert admin.get("/api/v1/me").status_code == 200  # other keys keep the default rate
    bad = admin.post(
        "/api/v1/keys", {"name": "x", "role": "viewer", "rate_limit": "fast"}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "rate_limit"
