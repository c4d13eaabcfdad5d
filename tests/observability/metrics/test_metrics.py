"""What an operator scraping `/metrics` sees after requests and runs of one process."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from executions.models import Execution, Worker
from tests.conftest import IssuedKey, client_for
from tests.observability.metrics.support import (
    EXECUTE,
    TOKEN,
    Samples,
    example,
    parse,
    queued_two_step,
    total,
    two_step,
)

pytestmark = pytest.mark.django_db


def test_a_sync_run_of_the_offline_demo_counts_its_end_and_each_node_run(
    scrape: Callable[[], Samples],
    run: Callable[..., dict[str, Any]],
    tenant: Any,
    settings: Any,
    tmp_path: Any,
) -> None:
    from tenants.management.commands.demo_catalogue import write_catalogue

    settings.AGENTFLOW_SQLITE_ROOT = tmp_path
    write_catalogue(tmp_path / f"t{tenant.pk}" / "demo.sqlite3")
    before = scrape()
    body = run(example("offline-demo"), {"user_input": "any prices?"})
    assert body["status"] == "success", body
    after = scrape()

    run_labels = {"tenant": "acme", "workflow": "(inline)", "mode": "sync"}

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("agentflow_executions_started_total", **run_labels) == 1
    assert grew("agentflow_executions_ended_total", status="succeeded", **run_labels) == 1
    assert grew("agentflow_executions_ended_total", status="failed") == 0
    assert grew("agentflow_execution_duration_seconds_count", mode="sync", status="succeeded") == 1
    # input → router → catalogue (db) → answer (aggregator): four attempts, all succeeded
    for node_type in ("input", "router", "db", "aggregator"):
        assert grew("agentflow_node_runs_total", node_type=node_type, status="succeeded") == 1
        assert grew("agentflow_node_duration_seconds_count", node_type=node_type) == 1
    assert grew("agentflow_node_errors_total") == 0
    route = {"route": "/api/v1/workflows/execute", "method": "POST"}
    assert grew("agentflow_http_requests_total", status="200", **route) == 1
    assert grew("agentflow_http_request_duration_seconds_count", **route) == 1
    assert not [labels for name, labels, _ in after if "execution" in " ".join(labels)]
    assert body["execution_id"] not in str(after)


def test_provider_calls_tokens_and_cost_are_counted_by_provider_and_model(
    providers: None, scrape: Callable[[], Samples], run: Callable[..., dict[str, Any]]
) -> None:
    before = scrape()
    body = run(example("parallel-review"), {"user_input": "Cats are great."})
    assert body["status"] == "success", body
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # two gpt-4o-mini reviewers and one Claude: the fake servers name the model they answer as
    assert grew("agentflow_provider_calls_total", provider="openai", outcome="ok") == 2
    assert grew("agentflow_provider_calls_total", provider="anthropic", outcome="ok") == 1
    assert grew("agentflow_provider_calls_total", outcome="error") == 0
    calls = [labels for name, labels, _ in after if name == "agentflow_provider_calls_total"]
    claude = [labels["model"] for labels in calls if labels["provider"] == "anthropic"]
    assert claude and all(model.startswith("claude") for model in claude)
    tokens_in = grew("agentflow_provider_tokens_total", direction="in")
    tokens_out = grew("agentflow_provider_tokens_total", direction="out")
    assert tokens_in > 0 and tokens_out > 0
    assert tokens_in + tokens_out == body["tokens_used"]
    assert grew("agentflow_provider_cost_usd_total") == pytest.approx(body["cost"])
    assert body["cost"] > 0
    assert grew("agentflow_execution_tokens_total", tenant="acme") == body["tokens_used"]
    assert grew("agentflow_node_runs_total", node_type="llm", status="succeeded") == 3


def test_a_budget_refusal_is_counted_by_the_limit_reached(
    providers: None, tenant: Any, scrape: Callable[[], Samples], run: Callable[..., dict[str, Any]]
) -> None:
    tenant.daily_token_budget = 1
    tenant.save()
    before = scrape()
    body = run(example("parallel-review"), {"user_input": "Cats are great."})
    assert body["error"]["code"] == "budget_exceeded", body
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # The reviewers reserve at once: one finds the day's count under its limit and is called,
    # the next is refused, which ends the run (a third may not have asked yet).
    refused = grew("agentflow_budget_refusals_total", limit="token")
    assert refused >= 1
    assert grew("agentflow_provider_calls_total") + refused <= 3
    assert grew("agentflow_node_errors_total", node_type="llm", code="budget_exceeded") == refused


def test_rate_limit_waits_and_refusals_are_counted_by_queue(
    scrape: Callable[[], Samples], run: Callable[..., dict[str, Any]], settings: Any
) -> None:
    spec, queue = queued_two_step(per_second=1)
    settings.AGENTFLOW_MAX_RATE_WAIT = 10.0
    assert run(spec, {"user_input": "a"})["status"] == "success"  # a full bucket: no wait
    assert run(spec, {"user_input": "b"})["status"] == "success"  # waited about a second
    settings.AGENTFLOW_MAX_RATE_WAIT = 0.05
    refused = run(spec, {"user_input": "c"})
    assert refused["error"]["code"] == "rate_limited", refused
    samples = scrape()
    assert total(samples, "agentflow_ratelimit_waits_total", queue=queue) == 1
    assert 0.3 < total(samples, "agentflow_ratelimit_wait_seconds_total", queue=queue) <= 1.0
    assert total(samples, "agentflow_ratelimit_refusals_total", queue=queue) == 1


def test_errors_are_counted_by_problem_type_and_unknown_paths_by_no_route(
    scrape: Callable[[], Samples], executor_key: IssuedKey
) -> None:
    before = scrape()
    api = client_for(executor_key)
    spec = two_step()
    spec["start_node"] = "nope"
    assert api.post(EXECUTE, {"workflow": spec}, format="json").status_code == 422
    assert api.get("/api/v1/executions/exec_000000000000000000000000").status_code == 404
    assert api.get("/api/v1/no/such/thing/12345").status_code == 404
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("agentflow_http_errors_total", problem="invalid_workflow", status="422") == 1
    assert grew("agentflow_http_errors_total", problem="not_found", status="404") == 2
    execution = "/api/v1/executions/<exec:execution_id>"
    assert grew("agentflow_http_requests_total", route=execution, status="404") == 1
    assert grew("agentflow_http_requests_total", route="(unmatched)", status="404") == 1
    assert not [labels for _, labels, _ in after if "12345" in labels.get("route", "")]


def test_queued_and_running_runs_and_workers_are_read_from_the_database(
    scrape: Callable[[], Samples], tenant: Any
) -> None:
    now = timezone.now()
    common = {"tenant": tenant, "spec": {}, "workflow_name": "w", "mode": "async"}
    Execution.objects.create(status="queued", **common)
    oldest = Execution.objects.create(status="queued", **common)
    Execution.objects.filter(pk=oldest.pk).update(created_at=now - timedelta(minutes=5))
    Execution.objects.create(status="running", heartbeat_at=now, **common)
    Execution.objects.create(status="running", heartbeat_at=now - timedelta(hours=1), **common)
    Execution.objects.create(status="succeeded", **common)
    Worker.objects.create(name="host:1", started_at=now, beat_at=now, capacity=50, running=2)
    gone = now - timedelta(hours=1)
    Worker.objects.create(name="host:2", started_at=gone, beat_at=gone, capacity=50, running=9)

    samples = scrape()
    assert total(samples, "agentflow_executions_queued") == 2
    assert total(samples, "agentflow_executions_running") == 2
    assert total(samples, "agentflow_executions_stale") == 1
    assert 299 < total(samples, "agentflow_queue_oldest_age_seconds") < 400
    assert total(samples, "agentflow_workers_alive") == 1
    assert total(samples, "agentflow_worker_capacity") == 50
    assert total(samples, "agentflow_worker_runs") == 2
    age = "agentflow_worker_heartbeat_age_seconds"
    assert total(samples, age, worker="host:1") < 60
    assert total(samples, age, worker="host:2") > 3000
    assert total(samples, "agentflow_metrics_database_up") == 1


def test_a_scrape_is_refused_without_the_token_or_an_allowed_address(
    settings: Any, client: Client
) -> None:
    settings.AGENTFLOW_METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["Content-Type"] == "application/problem+json"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert b"agentflow_" not in missing.content
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "x" * len(TOKEN))
    assert wrong.status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200

    settings.AGENTFLOW_METRICS_TOKEN = ""
    settings.DEBUG = False
    assert client.get("/metrics").status_code == 403  # nothing configured: nobody
    settings.AGENTFLOW_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.5").status_code == 403
    assert client.get("/api/v1/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_metrics_switched_off_record_nothing_and_answer_404(
    settings: Any, client: Client, run: Callable[..., dict[str, Any]]
) -> None:
    from agentflow_site.observability import metrics

    settings.AGENTFLOW_METRICS_TOKEN = TOKEN
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = parse(client.get("/metrics", headers=auth).content.decode())
    settings.AGENTFLOW_METRICS = False
    metrics.configure()
    try:
        assert run(two_step(), {"user_input": "x"})["status"] == "success"
        assert client.get("/metrics", headers=auth).status_code == 404
    finally:
        settings.AGENTFLOW_METRICS = True
        metrics.configure()
    after = parse(client.get("/metrics", headers=auth).content.decode())
    for name in ("agentflow_executions_ended_total", "agentflow_node_runs_total"):
        assert total(after, name) == total(before, name)
    route = "/api/v1/workflows/execute"
    assert total(after, "agentflow_http_requests_total", route=route) == total(
        before, "agentflow_http_requests_total", route=route
    )


def test_workflow_labels_are_capped_per_process() -> None:
    from agentflow_site.observability.metrics import _bounded, _pairs

    cap, seen = _pairs.cap, set(_pairs.seen)
    _pairs.cap = len(_pairs.seen) + 2
    try:
        assert _bounded("acme", "one") == ("acme", "one")
        assert _bounded("acme", "two") == ("acme", "two")
        assert _bounded("acme", "three") == ("acme", "(other)")
        assert _bounded("acme", "one") == ("acme", "one")
    finally:
        _pairs.cap, _pairs.seen = cap, seen
