"""Background runs: enqueue-to-first-node latency, and how many trivial runs two workers finish.

Run: `python bench/bench_background.py [--runs N] [--latency-samples N]`. When DATABASE_URL points
at PostgreSQL, a new database `agentflow_bench_<random hex>` is created on that server and dropped
at the end (the only database this bench ever drops); otherwise SQLite in a temporary directory.
Starts two worker processes: `manage.py runworker` (AGENTFLOW_WORKER_CONCURRENCY runs each), or
where that command does not exist yet, two django-q2 clusters of one worker on the ORM broker.
"""

import argparse
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = {
    "name": "trivial",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "a",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "A {{ user_input }}"},
        },
        {
            "id": "b",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "B {{ final_output }}"},
        },
    ],
    "edges": [{"from": "input", "to": "a"}, {"from": "a", "to": "b"}],
}


@contextlib.contextmanager
def _own_database() -> Iterator[str]:
    """A new PostgreSQL database beside DATABASE_URL's, dropped at the end; "" for SQLite."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield ""
        return
    import psycopg

    name = f"agentflow_bench_{secrets.token_hex(6)}"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        from django.conf import settings
        from django.db import connections

        if settings.configured:  # our pooled connections go before the database does
            connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(data_dir: str, database_url: str) -> dict[str, str]:
    env = {**os.environ, "AGENTFLOW_DATA_DIR": data_dir, "LOG_LEVEL": "WARNING", "Q_WORKERS": "1"}
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


def _worker_command() -> str:
    exists = (ROOT / "executions/management/commands/runworker.py").exists()
    return "runworker" if exists else "qcluster"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency-samples", type=int, default=40)
    args = parser.parse_args()
    with _own_database() as database_url:
        latencies, took, vendor = _measure(args, database_url)
    command = _worker_command()
    workers = (
        f"two runworker processes ({os.environ.get('AGENTFLOW_WORKER_CONCURRENCY', 'default')} "
        "runs each)"
        if command == "runworker"
        else f"two clusters of one worker, ORM broker, Q_POLL {os.environ.get('Q_POLL', '0.2')} s"
    )
    print(f"database: {vendor}; {workers}")
    print(
        f"enqueue -> first node started: p50 {statistics.median(latencies):.0f} ms, "
        f"p95 {_pct(latencies, 0.95):.0f} ms ({len(latencies)} runs, one at a time)"
    )
    print(
        f"throughput: {args.runs} trivial 3-node runs in {took:.1f} s = "
        f"{args.runs / took:.1f} runs/s"
    )
    return 0


def _measure(args: argparse.Namespace, database_url: str) -> tuple[list[float], float, str]:
    data_dir = tempfile.mkdtemp(prefix="agentflow-bench-")
    env = _env(data_dir, database_url)
    os.environ.update(env)
    if not database_url:
        os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentflow_site.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    from django.db import connection, transaction

    from executions.models import Execution, NodeRun
    from executions.services import execution_create
    from executions.tasks import enqueue_run
    from runtime.validation import validate_spec
    from tenants.services import tenant_create

    tenant = tenant_create(slug="bench")
    validated = validate_spec(SPEC)

    def enqueue() -> str:
        with transaction.atomic():
            execution = execution_create(
                tenant=tenant, validated=validated, mode="async", initial_state={"user_input": "x"}
            )
            enqueue_run(execution.id)
        return execution.id

    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", _worker_command()],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        warm_up = [enqueue() for _ in range(4)]  # the workers start; each one's first run
        deadline = time.monotonic() + 120
        while Execution.objects.filter(pk__in=warm_up, status="succeeded").count() < 4:
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not run the warm-up runs within 120 s")
            time.sleep(0.05)
        latencies = []
        for _ in range(args.latency_samples):
            execution_id = enqueue()
            created = Execution.objects.get(pk=execution_id).created_at
            while not (first := NodeRun.objects.filter(execution_id=execution_id).first()):
                time.sleep(0.005)
            latencies.append((first.started_at - created).total_seconds() * 1000)
            while Execution.objects.get(pk=execution_id).status != "succeeded":
                time.sleep(0.01)
        start = time.perf_counter()
        ids = [enqueue() for _ in range(args.runs)]
        while Execution.objects.filter(pk__in=ids, status="succeeded").count() < len(ids):
            time.sleep(0.1)
        took = time.perf_counter() - start
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    return latencies, took, connection.vendor


if __name__ == "__main__":
    sys.exit(main())
