"""What tracing costs: a sync execute of a 20-node chain, and a plain API read, with OpenTelemetry
off, on (every span batched to an exporter that drops them: the export itself runs on the SDK's
own thread, off the request), on with 10 % of traces sampled, and on without SQL spans
(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=psycopg), in alternating blocks in one process.

Times are CPU time of the process (all its threads, the exporter's too), which a machine
busy with other work disturbs far less than wall time.

Run: `python bench/bench_tracing.py [--blocks N] [--per-block N] [--nodes N]`. On PostgreSQL when
DATABASE_URL points at one (a database of its own, `agentflow_bench_<hex>`, dropped at the end;
then every SQL statement is a span too), else SQLite in a temporary directory.
Target (issue 17): tracing on costs < 5 % of a sync execute of a 20-node chain.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_recording import _drop, _own_database, _spec  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=6, help="off/on pairs of blocks")
    parser.add_argument("--per-block", type=int, default=15)
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()
    env = {**os.environ, "AGENTFLOW_DATA_DIR": tempfile.mkdtemp(prefix="agentflow-bench-")}
    env |= {"LOG_LEVEL": "WARNING", "DEBUG": "false", "ALLOWED_HOSTS": "testserver"}
    env |= {"SECURE_SSL_REDIRECT": "false", "API_THROTTLE_RATE": "100000/min"}
    env.setdefault("DJANGO_SECRET_KEY", "bench-" + "k" * 60)
    env.pop("REDIS_URL", None)
    env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}  # this bench decides
    own = _own_database()
    if own:
        url = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{own[1]}")
        env["DATABASE_URL"] = urlunsplit(url)
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


class _Dropping:
    """A span exporter that sends nowhere."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 0) -> bool:
        return True


MODES = ("off", "on", "on, 10 % sampled", "on, no SQL spans")


def _provider(mode: str) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    sampled = "sampled" in mode
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1)) if sampled else None)
    provider.add_span_processor(BatchSpanProcessor(_Dropping()))  # type: ignore[arg-type]
    return provider


def _switch(mode: str, providers: dict[str, Any]) -> None:
    from django.db import connections

    from agentflow_site.observability.tracing import start_tracing, stop_tracing

    stop_tracing()
    for connection in connections.all():  # connections made from now on are traced, or not
        connection.close()
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()  # type: ignore[attr-defined]
    os.environ["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "psycopg" if "SQL" in mode else ""
    if mode != "off":
        start_tracing(providers[mode])


def _measure(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.db import connection
    from rest_framework.test import APIClient

    from tenants.models import Role
    from tenants.services import api_key_create, tenant_create

    tenant = tenant_create(slug="bench")
    _, secret = api_key_create(tenant=tenant, role=Role.EXECUTOR, actor="bench")
    body = {"workflow": _spec(args.nodes), "initial_state": {"user_input": "hello"}}
    providers = {mode: _provider(mode) for mode in MODES[1:]}

    def client() -> APIClient:  # a new one loads the middleware as it now is
        api = APIClient()
        api.credentials(HTTP_X_API_KEY=secret)
        return api

    def execute(api: APIClient) -> None:
        answer = api.post("/api/v1/workflows/execute", body, format="json")
        assert answer.status_code == 200 and answer.json()["status"] == "success", answer.content

    def read(api: APIClient) -> None:
        assert api.get("/api/v1/me").status_code == 200

    times: dict[tuple[str, str], list[float]] = {}
    for mode in MODES:  # warm every way: imports, compiled graph, pools
        _switch(mode, providers)
        api = client()
        for _ in range(3):
            execute(api)
            read(api)
    for _ in range(args.blocks):
        for mode in MODES:
            _switch(mode, providers)
            api = client()
            _timed(times, ("execute", mode), args.per_block, partial(execute, api))
            _timed(times, ("read", mode), args.per_block, partial(read, api))
    _switch("off", providers)
    for provider in providers.values():
        provider.shutdown()
    print(f"database: {connection.vendor}; sync execute of a {args.nodes}-node template chain")
    print("CPU time per call, p50 (ms), and what tracing adds to it:")
    for what in ("execute", "read"):
        off = statistics.median(times[what, "off"])
        print(f"  {what:8} off {off:7.2f}")
        for mode in MODES[1:]:
            on = statistics.median(times[what, mode])
            extra = f"+{on - off:5.2f} ms ({(on - off) / off * 100:+.1f} %)"
            print(f"  {what:8} {mode:17} {on:7.2f}   {extra}")
    off, on = (statistics.median(times["execute", mode]) for mode in ("off", "on"))
    per_node = (on - off) / (args.nodes + 1) * 1000
    print(f"per node step, all on (execute's extra / {args.nodes + 1} nodes): {per_node:.0f} us")
    return 0


def _timed(
    times: dict[tuple[str, str], list[float]],
    key: tuple[str, str],
    n: int,
    work: Callable[[], None],
) -> None:
    """Each call's CPU time (ms) in this process, every thread (the exporter's too): what
    tracing costs the machine, and not the other processes' load on a busy one."""
    for _ in range(n):
        start = time.process_time()
        work()
        times.setdefault(key, []).append((time.process_time() - start) * 1000)


if __name__ == "__main__":
    sys.exit(main())
