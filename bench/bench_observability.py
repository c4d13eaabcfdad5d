"""What metrics cost: a sync execute of a 20-node chain, and a plain API read, with Prometheus
metrics off and on (multiprocess mode: every sample a write to a memory-mapped file), in
alternating blocks in one process; then what one scrape of `/metrics` takes.

Run: `python bench/bench_observability.py [--blocks N] [--per-block N] [--nodes N]`. On
PostgreSQL when DATABASE_URL points at one (a database of its own, `agentflow_bench_<hex>`,
dropped at the end), else SQLite in a temporary directory.
Target (issue 17): metrics on cost < 5 % of a sync execute of a 20-node chain.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_recording import _drop, _own_database  # noqa: E402
from bench_recording import _spec as _chain  # noqa: E402

TOKEN = "bench-metrics-token-0123456789"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=6, help="off/on pairs of blocks")
    parser.add_argument("--per-block", type=int, default=15)
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="agentflow-bench-")
    env = {**os.environ, "AGENTFLOW_DATA_DIR": data_dir, "AGENTFLOW_METRICS_TOKEN": TOKEN}
    env |= {"LOG_LEVEL": "WARNING", "DEBUG": "false", "ALLOWED_HOSTS": "testserver"}
    env |= {"SECURE_SSL_REDIRECT": "false", "API_THROTTLE_RATE": "100000/min"}
    env |= {"PROMETHEUS_MULTIPROC_DIR": str(Path(data_dir) / "metrics")}
    env.setdefault("DJANGO_SECRET_KEY", "bench-" + "k" * 60)
    env.pop("REDIS_URL", None)
    env = {k: v for k, v in env.items() if not k.startswith(("OTEL_", "SENTRY_"))}
    own = _own_database()
    if own:
        env["DATABASE_URL"] = urlunsplit(
            urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{own[1]}")
        )
    else:
        env.pop("DATABASE_URL", None)
    try:
        os.environ.clear()
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "agentflow_site.settings"
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
        return _measure(args)
    finally:
        if own:
            from django.db import connections

            connections.close_all()
            _drop(*own)


def _switch(on: bool) -> None:
    from django.conf import settings

    from agentflow_site.observability import metrics

    settings.AGENTFLOW_METRICS = on
    metrics.configure()


def _measure(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.db import connection
    from rest_framework.test import APIClient

    from tenants.models import Role
    from tenants.services import api_key_create, tenant_create

    tenant = tenant_create(slug="bench")
    _, secret = api_key_create(tenant=tenant, role=Role.EXECUTOR, actor="bench")
    body = {"workflow": _chain(args.nodes), "initial_state": {"user_input": "hello"}}
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=secret)

    def execute() -> None:
        answer = api.post("/api/v1/workflows/execute", body, format="json")
        assert answer.status_code == 200 and answer.json()["status"] == "success", answer.content

    def read() -> None:
        assert api.get("/api/v1/me").status_code == 200

    times: dict[tuple[str, bool], list[float]] = {}
    for on in (False, True):  # warm both ways: imports, compiled graph, pools, metric files
        _switch(on)
        for _ in range(5):
            execute()
            read()
    for _ in range(args.blocks):
        for on in (False, True):
            _switch(on)
            _timed(times, ("execute", on), args.per_block, execute)
            _timed(times, ("read", on), args.per_block, read)
    _switch(True)
    print(f"database: {connection.vendor}; sync execute of a {args.nodes}-node template chain")
    for what in ("execute", "read"):
        off_ms, on_ms = (statistics.median(times[what, flag]) for flag in (False, True))
        print(
            f"{what:8} off p50 {off_ms:7.2f} ms   on p50 {on_ms:7.2f} ms   "
            f"+{on_ms - off_ms:5.2f} ms ({(on_ms - off_ms) / off_ms * 100:+.1f} %)"
        )
    off_ms, on_ms = (statistics.median(times["execute", flag]) for flag in (False, True))
    per_node = (on_ms - off_ms) / (args.nodes + 1) * 1000
    print(f"per node step (all of execute's extra over {args.nodes + 1} nodes): {per_node:.0f} us")
    per_event = _recording_cost()
    print(
        f"recording one node attempt's samples: {per_event:.1f} us; a {args.nodes + 1}-node run "
        f"records about {(args.nodes + 3) * per_event / 1000:.2f} ms of them "
        f"({(args.nodes + 3) * per_event / 1000 / off_ms * 100:.2f} % of its p50 off)"
    )
    scrapes: dict[tuple[str, bool], list[float]] = {}
    _timed(scrapes, ("scrape", True), 20, lambda: _scrape(api))
    print(f"one /metrics scrape: p50 {statistics.median(scrapes['scrape', True]):.2f} ms")
    return 0


def _recording_cost(n: int = 20_000) -> float:
    """Microseconds to record one node attempt (counter, histogram), timed alone: the machine's
    load moves a whole execute far more than this."""
    from datetime import UTC, datetime

    from agentflow_site.observability import metrics
    from runtime.events import NodeFinished

    event = NodeFinished("n0", "aggregator", 1, datetime.now(UTC), 0.001, "succeeded")
    start = time.perf_counter()
    for _ in range(n):
        metrics.node_finished(event)
    return (time.perf_counter() - start) / n * 1e6


def _scrape(api: Any) -> None:
    answer = api.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200 and b"agentflow_node_runs_total" in answer.content


def _timed(
    times: dict[tuple[str, bool], list[float]],
    key: tuple[str, bool],
    n: int,
    work: Callable[[], None],
) -> None:
    for _ in range(n):
        start = time.perf_counter()
        work()
        times.setdefault(key, []).append((time.perf_counter() - start) * 1000)


if __name__ == "__main__":
    sys.exit(main())
