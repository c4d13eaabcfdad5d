"""The admin's health dashboard: staff see the traffic, runs, tokens and dependencies that the
metrics recorded, from samples kept in the database."""

import json
import re
import secrets
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client, override_settings
from django.utils import timezone

from agentflow_site.models import MetricSample
from agentflow_site.observability import sampler
from agentflow_site.observability.dashboard import WINDOWS, dashboard_data, quantile
from executions.models import Worker
from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeOpenAIServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PAGE = "/admin/agentflow_site/metricsample/"
DATA = PAGE + "data/"
EXECUTE = "/api/v1/workflows/execute"


def one_llm() -> dict[str, Any]:
    source = {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY", "max_retries": 0}
    return {
        "name": "dashboard-llm",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "ask",
                "type": "llm",
                "metadata": {"source": "gpt", "prompt": "{{ user_input }}"},
            },
        ],
        "edges": [{"from": "input", "to": "ask"}],
        "sources": [{"id": "gpt", "kind": "openai", "config": source}],
    }


def staff_client(**flags: bool) -> Client:
    user = get_user_model().objects.create_user(
        f"ops-{secrets.token_hex(4)}", "ops@example.com", secrets.token_urlsafe(16), **flags
    )
    client = Client()
    client.force_login(user)
    return client


def tile(html: str, tile_id: str) -> str:
    """The text a person reads in one of the page's tiles, tags stripped."""
    found = re.search(rf'id="{tile_id}"[^>]*>(.*?)</dd>', html, re.S)
    assert found, f"no tile {tile_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


@pytest.fixture
def provider(
    tenant: Any, openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS={"openai": openai_server.base_url}):
        yield


@pytest.fixture
def demo_catalogue(executor_key: IssuedKey, settings: Any, tmp_path: Path) -> None:
    from tenants.management.commands.demo_catalogue import write_catalogue

    settings.AGENTFLOW_SQLITE_ROOT = tmp_path
    write_catalogue(tmp_path / f"t{executor_key.row.tenant_id}" / "demo.sqlite3")


@pytest.mark.django_db
def test_staff_see_the_requests_runs_and_tokens_the_metrics_recorded(
    executor_key: IssuedKey,
    provider: None,
    demo_catalogue: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    now = timezone.now()
    Worker.objects.create(name="box:1", started_at=now, beat_at=now, capacity=50, running=0)
    assert sampler.sample_if_due(now=now - timedelta(seconds=90)) is not None
    api = client_for(executor_key)
    with django_capture_on_commit_callbacks(execute=True):
        demo = {"workflow": json.loads((EXAMPLES / "offline-demo.json").read_text())}
        demo["initial_state"] = {"user_input": "any prices?"}
        assert api.post(EXECUTE, demo, format="json").json()["status"] == "success"
        asked = {"workflow": one_llm(), "initial_state": {"user_input": "Hello", "x": "Hi"}}
        llm = api.post(EXECUTE, asked, format="json").json()
    assert llm["status"] == "success" and llm["tokens_used"] > 0
    assert api.get("/api/v1/executions/exec_nope").status_code == 404
    assert api.get(f"/api/v1/executions/{llm['execution_id']}").status_code == 200
    assert sampler.sample_if_due(now=now - timedelta(seconds=30)) is not None

    staff = staff_client(is_staff=True)
    page = staff.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert tile(html, "af-requests").startswith("4 ")  # 2 executes, a 404, a trace
    assert tile(html, "af-client-errors") == "1"
    assert tile(html, "af-server-errors").startswith("0 ")
    assert tile(html, "af-runs-started") == "2"
    assert tile(html, "af-runs-succeeded") == "2"
    assert tile(html, "af-runs-failed") == "0"
    assert tile(html, "af-running") == "0"
    assert tile(html, "af-workers").startswith("1 ")
    assert tile(html, "af-database").startswith("ok ")
    assert tile(html, "af-redis").startswith("ok ")
    assert float(tile(html, "af-latency-p50").split()[0]) > 0
    row = re.search(r'<tr data-tenant="acme"><td>acme</td><td>(\d+)</td>', html)
    assert row and int(row.group(1)) == llm["tokens_used"]
    assert html.count('<svg class="af-chart') == 10
    assert '<g class="af-bar" data-label="acme"' in html

    data = staff.get(DATA, {"window": "day"}).json()
    assert data["window"] == "day"
    totals = data["totals"]
    assert totals["requests"] == 4  # the dashboard's own pages are not counted
    assert totals["executions"] == {
        "started": 2, "succeeded": 2, "failed": 0, "timed_out": 0, "cancelled": 0
    }  # fmt: skip
    cost = round(llm["final_state"]["cost"], 6)
    assert cost > 0
    assert totals["tenants"] == [{"tenant": "acme", "tokens": llm["tokens_used"], "cost_usd": cost}]
    assert totals["latency_ms"]["p99"] >= totals["latency_ms"]["p50"] > 0
    assert data["now"]["workers"] == 1 and data["now"]["database"]["status"] == "ok"
    assert data["now"]["database"]["latency_ms"] > 0
    assert sum(v or 0 for v in data["series"]["succeeded"]) == 2
    assert any(rate for rate in data["series"]["request_rate"])
    assert 'id="af-runs-succeeded">2<' in data["html"]
    later = timezone.now() + timedelta(seconds=60)  # a sample after both dashboard requests
    assert sampler.sample_if_due(now=later) is not None
    assert dashboard_data(WINDOWS["hour"], now=later)["totals"]["requests"] == 4


@pytest.mark.django_db
def test_nobody_but_staff_get_the_dashboard_or_its_data(
    executor_key: IssuedKey, admin_key: IssuedKey
) -> None:
    sampler.sample_if_due()
    for client in (Client(), staff_client(is_staff=False)):
        for url in (PAGE, DATA):
            answer = client.get(url)
            assert answer.status_code == 302
            assert answer["Location"].startswith("/admin/login/")
    for key in (executor_key, admin_key):
        for url in (PAGE, DATA):
            refused = client_for(key).get(url)
            assert refused.status_code == 302
            assert b"totals" not in refused.content
    staff = staff_client(is_staff=True)  # no permission granted: staff is enough
    index = staff.get("/admin/").content.decode()
    assert f'href="{PAGE}"' in index and "Health dashboard" in index
    assert staff.get(DATA).json()["now"]["sampled_at"]
    sample_id = MetricSample.objects.values_list("pk", flat=True).first()
    for nothing in ("add/", f"{sample_id}/change/", f"{sample_id}/delete/"):  # counts only
        assert staff.get(PAGE + nothing).status_code == 404


def sample(host: str, at: datetime, **raw: float) -> None:
    """A stored sample of `host` with these counter values, as the sampler would store it."""
    previous = MetricSample.objects.filter(host=host).order_by("-taken_at").first()
    counters = {key.replace("__", "|"): value for key, value in raw.items()}
    data = {
        "c": counters,
        "o": sampler.offsets(previous.data if previous else None, counters),
        "g": {"running": 3, "queued": 1},
    }
    MetricSample.objects.create(host=host, period=at, taken_at=at, claim="t", data=data)


@pytest.mark.django_db
def test_restarted_counters_count_from_zero_and_hosts_are_added_up() -> None:
    now = timezone.now()
    ago = [now - timedelta(minutes=m) for m in (50, 40, 30, 20, 10)]
    sample("web-1", ago[0], http=100, http__5xx=10, ended__succeeded=7)
    sample("web-1", ago[1], http=150, http__5xx=10, ended__succeeded=9)
    sample("web-1", ago[2], http=20, ended__succeeded=1)  # every process restarted
    sample("web-1", ago[3], http=30, http__5xx=3, ended__succeeded=2)
    sample("web-2", ago[1], http=1000)
    sample("web-2", ago[4], http=1100, ended__failed=1)
    totals = dashboard_data(WINDOWS["hour"], now=now)["totals"]
    assert totals["requests"] == 50 + 20 + 10 + 100
    assert totals["server_errors"] == 3
    assert totals["error_rate"] == round(100 * 3 / 180, 2)
    assert totals["executions"]["succeeded"] == 2 + 1 + 1
    assert totals["executions"]["failed"] == 1
    web1 = (50 + 20 + 10) / (30 * 60)
    web2 = 100 / (30 * 60)
    assert totals["request_rate"] == pytest.approx(web1 + web2, abs=0.001)


def test_latency_percentiles_are_read_from_the_histogram_buckets() -> None:
    buckets = {"0.1": 50.0, "0.25": 90.0, "1.0": 99.0, "+Inf": 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.7, buckets) == pytest.approx(0.1 + 0.15 * 20 / 40)
    assert quantile(0.995, buckets) == pytest.approx(1.0)  # past the last bound: the last bound
    assert quantile(0.5, {"0.1": 0.0, "+Inf": 0.0}) is None


@pytest.mark.django_db
def test_old_samples_are_pruned_when_a_new_one_is_taken() -> None:
    old = timezone.now() - timedelta(days=2)
    MetricSample.objects.create(host="gone", period=old, taken_at=old, claim="x", data={})
    assert sampler.sample_if_due() is not None
    assert not MetricSample.objects.filter(host="gone").exists()
    assert sampler.sample_if_due() is None  # the same interval: taken already


@pytest.mark.django_db(transaction=True)
def test_processes_sampling_at_once_store_one_sample_per_interval() -> None:
    at = timezone.now()
    taken: list[object] = []
    start = threading.Barrier(4)

    def process() -> None:
        try:
            start.wait()
            taken.append(sampler.sample_if_due(now=at))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=process) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(taken) == 4 and sum(found is not None for found in taken) == 1
    stored = MetricSample.objects.get()
    assert stored.taken_at == at and "db_ms" in stored.data["g"]


@pytest.mark.django_db(transaction=True)
def test_the_run_workers_sampling_thread_stores_a_sample_each_interval(settings: Any) -> None:
    settings.AGENTFLOW_HEALTH_SAMPLE_SECONDS = 1
    stop = threading.Event()
    thread = sampler.sample_every_interval(stop)
    try:
        deadline = timezone.now() + timedelta(seconds=20)
        while MetricSample.objects.filter(taken_at__isnull=False).count() < 2:
            assert timezone.now() < deadline, "no two samples within 20 s"
            stop.wait(0.2)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    periods = list(MetricSample.objects.values_list("period", flat=True))
    assert len(set(periods)) == len(periods) >= 2
