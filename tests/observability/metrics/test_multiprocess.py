"""Several processes, one `/metrics`: two web processes (`agentflow_site.serving --processes 2`,
SO_REUSEPORT) and a run worker write their samples apart; any web process serves their sum."""

import shutil
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from executions.models import Execution
from tests.conftest import issue_key
from tests.observability.metrics.support import EXECUTE, TOKEN, Samples, parse, total, two_step
from tests.stack import Stack, stack_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIVE = {"route": "/health/live", "method": "GET", "status": "200"}


def _scrape(stack: Stack) -> Samples:
    with httpx2.Client() as fresh:  # a new connection: the kernel picks the process
        response = fresh.get(
            f"{stack.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
    assert response.status_code == 200
    return parse(response.text)


def _per_process(directory: Path, scratch: Path) -> dict[str, Samples]:
    """Each slot's own samples (its files alone), by slot."""
    found: dict[str, Samples] = {}
    for counters in directory.glob("counter_*.db"):
        slot = counters.stem.removeprefix("counter_")
        alone = scratch / slot
        alone.mkdir(parents=True)
        shutil.copy(counters, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        found[slot] = parse(generate_latest(registry).decode())
    return found


def test_two_web_processes_and_a_worker_are_summed_in_every_scrape(
    tmp_path: Path, tenant: Any
) -> None:
    samples_dir = tmp_path / "metrics"
    env = stack_env(
        tmp_path,
        AGENTFLOW_METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(samples_dir),
        AGENTFLOW_HEARTBEAT_STALE="300",  # a loaded machine's worker stays alive
    )
    stack = Stack(env, tmp_path)
    try:
        serving = ["-m", "agentflow_site.serving", "--port", str(stack.port), "--processes", "2"]
        stack._start("web", *serving)
        wait_for(stack._answers, 120, "the web processes")
        stack.worker()
        key = issue_key(tenant, "executor")
        before = total(_scrape(stack), "agentflow_http_requests_total", **LIVE)
        for _ in range(40):  # new connections, spread over both processes by the kernel
            with httpx2.Client() as fresh:
                assert fresh.get(f"{stack.url}/health/live", timeout=30).status_code == 200
        body = {"workflow": two_step(), "initial_state": {"user_input": "x"}, "mode": "async"}
        answer = httpx2.post(
            f"{stack.url}{EXECUTE}", json=body, headers={"X-API-Key": key.secret}, timeout=30
        )
        assert answer.status_code == 202, answer.text
        execution_id = answer.json()["execution_id"]
        wait_for(
            lambda: Execution.objects.get(pk=execution_id).status == "succeeded",
            120,
            "the worker to run it",
        )
        ended = {"mode": "async", "status": "succeeded", "workflow": "(inline)"}

        # Every scrape, whichever process answers it, sees every process's counts.
        for _ in range(6):
            scraped = _scrape(stack)
            seen = {
                "live": total(scraped, "agentflow_http_requests_total", **LIVE) - before,
                "ended": total(scraped, "agentflow_executions_ended_total", **ended),
                "nodes": total(scraped, "agentflow_node_runs_total", status="succeeded"),
                "workers": total(scraped, "agentflow_workers_alive"),
            }
            assert seen == {"live": 40, "ended": 1, "nodes": 2, "workers": 1}

        per_slot = _per_process(samples_dir, tmp_path / "scratch")
        served = {
            slot: total(samples, "agentflow_http_requests_total", **LIVE)
            for slot, samples in per_slot.items()
        }
        assert len([count for count in served.values() if count]) == 2, served  # both web
        ran = [s for s in per_slot.values() if total(s, "agentflow_node_runs_total") == 2]
        assert len(ran) == 1  # the worker's own file
        assert total(ran[0], "agentflow_http_requests_total") == 0
    finally:
        stack.stop()
