"""The Grafana dashboard and the Prometheus config under deploy/ name what AgentFlow serves."""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.utils import timezone

from executions.models import Worker
from tests.observability.metrics.support import (
    Samples,
    example,
    names,
    queued_two_step,
)

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
METRIC = re.compile(r"\b(agentflow_[a-z0-9_]+)")

pytestmark = pytest.mark.django_db


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "agentflow.json").read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def test_every_dashboard_query_names_metrics_that_metrics_serves_after_runs(
    providers: None,
    tenant: Any,
    scrape: Callable[[], Samples],
    run: Callable[..., dict[str, Any]],
    settings: Any,
    client: Any,
) -> None:
    # Something of everything: provider calls, a failed run, a queue's wait and refusal, a
    # budget refusal, a worker, a 404.
    assert run(example("parallel-review"), {"user_input": "Cats."})["status"] == "success"
    spec, _ = queued_two_step(per_second=1)
    settings.AGENTFLOW_MAX_RATE_WAIT = 10.0
    run(spec, {"user_input": "a"})
    run(spec, {"user_input": "b"})
    settings.AGENTFLOW_MAX_RATE_WAIT = 0.05
    assert run(spec, {"user_input": "c"})["error"]["code"] == "rate_limited"
    tenant.daily_token_budget = 1
    tenant.save()
    run(example("parallel-review"), {"user_input": "Cats."})
    client.get("/api/v1/no/such/page")  # a problem+json 404
    now = timezone.now()
    Worker.objects.create(name="host:7", started_at=now, beat_at=now, capacity=5)
    served = names(scrape())

    queries = dashboard_queries()
    assert len(queries) >= 30
    named = {name for query in queries for name in METRIC.findall(query)}
    assert len(named) >= 25
    assert sorted(named - served) == []


def test_the_prometheus_config_scrapes_metrics_with_a_bearer_token() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "agentflow"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
