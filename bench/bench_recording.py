"""What recording costs: a 20-node chain run in-process against the same run through the service
(`execution_create` + `execution_run` as the execute API calls them: the batched trace rows and
events, the end),
interleaved (A, B, A, B …), with the statements the recorded run issues.

Run: `python bench/bench_recording.py [--rounds N] [--nodes N]`. On PostgreSQL when
DATABASE_URL points at one: the bench creates its own database (`agentflow_bench_<hex>`) beside
it and drops only that one at the end. Else SQLite in a temporary directory.
Target (issue 15): recorded <= 2 x in-process + 5 ms.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _spec(nodes: int) -> dict:
    chain = [
        {
            "id": f"n{i}",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": f"step {i}: {{{{ user_input }}}}"},
        }
        for i in range(nodes)
    ]
    edges = [{"from": "input", "to": "n0"}] + [
        {"from": f"n{i}", "to": f"n{i + 1}"} for i in range(nodes - 1)
    ]
    return {
        "name": "chain",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input"}, *chain],
        "edges": edges,
    }


def _own_database() -> tuple[str, str] | None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return None
    import psycopg

    name = f"agentflow_bench_{secrets.token_hex(4)}"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin, name


def _drop(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="agentflow-bench-")
    env = {**os.environ, "AGENTFLOW_DATA_DIR": data_dir, "LOG_LEVEL": "WARNING", "DEBUG": "false"}
    env.setdefault("DJANGO_SECRET_KEY", "bench-" + "k" * 60)
    env.pop("REDIS_URL", None)
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


def _measure(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agentflow_site.runtime_config import run_context
    from executions.services import execution_create, execution_run
    from runtime import loop
    from runtime.compiler import compile_workflow
    from runtime.runner import run_workflow
    from tenants.services import tenant_create
    from workflows.services import workflow_validate

    tenant = tenant_create(slug="bench")
    validated = workflow_validate(spec=_spec(args.nodes), tenant=tenant)
    assert validated.valid, validated.errors
    state = {"user_input": "hello"}
    workflow = compile_workflow(validated, state_keys=state.keys())

    def bare() -> None:
        outcome = loop.run(run_workflow(workflow, state, run_context(tenant="t1")))
        assert outcome.status == "succeeded"

    def recorded() -> None:
        execution = execution_create(
            tenant=tenant, validated=validated, initial_state=state, claim=True
        )  # as the execute API does for a sync run
        ran = execution_run(execution_id=execution.id, validated=validated, claimed=True)
        assert ran.status == "succeeded"

    for _ in range(3):  # warm: compiled graph, pools, imports
        bare()
        recorded()
    with CaptureQueriesContext(connection) as queries:
        recorded()
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    a_times, b_times = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        bare()
        a_times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        recorded()
        b_times.append((time.perf_counter() - start) * 1000)
    a, b = statistics.median(a_times), statistics.median(b_times)
    print(f"database: {connection.vendor}; a {args.nodes}-node chain of template nodes")
    for label, value, times in (("in-process (no records)", a, a_times), ("recorded", b, b_times)):
        print(f"{label:24} p50 {value:.1f} ms (min {min(times):.1f}, max {max(times):.1f})")
    print(f"recorded / (2 x in-process + 5 ms) = {b / (2 * a + 5):.2f}  (target <= 1.00)")
    counts = {kind: statements.count(kind) for kind in sorted(set(statements))}
    print(f"statements of one recorded run: {len(statements)} {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
