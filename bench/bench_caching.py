"""What the validation cache (workflows/cache.py) saves, with its hit rates.

Run: `python bench/bench_caching.py [--rounds N]`. Needs DATABASE_URL on PostgreSQL: a new
database `agentflow_bench_<random hex>` is created on that server, migrated and dropped at the
end (the only database this bench ever drops); REDIS_URL is used as it is set.

Side by side and interleaved (A, B, A, B … one call each), with the median and the p10-p90
spread in ms: cache off with cold template/CEL caches (a spec never seen), cache off warm (what
a repeat cost before), cache on (a hit), for
- `workflow_validate` of each example, of 50- and 1,000-node chains, and of a spec whose three
  sources are stored (each hit re-reads them in one query);
- a sync execute of a 5-node template chain through the Django test client;
- the worker's start path (load the execution, validate, compile: `Worker._start` before the run);
and beside them what stored-source resolution, pickling a result and its memory cost.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pickle
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRANTS = [
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "SHOP_DATABASE_URL",
    "CRM_TOKEN@http:crm.example.com",
]
MODES = ("off, cold", "off, warm", "on")


@contextlib.contextmanager
def _own_database() -> Iterator[str]:
    """A new PostgreSQL database beside DATABASE_URL's, dropped at the end."""
    import psycopg

    name = f"agentflow_bench_{secrets.token_hex(6)}"
    parts = urlsplit(os.environ["DATABASE_URL"])
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


def _setup(database_url: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AGENTFLOW_DATA_DIR": tempfile.mkdtemp(prefix="agentflow-bench-"),
        "DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "API_THROTTLE_RATE": "1000000/min",
        "DJANGO_SETTINGS_MODULE": "agentflow_site.settings",
    }
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()


def _cache(on: bool, cold: bool = False) -> None:
    from django.conf import settings

    from runtime.sandbox import expressions, templates

    settings.AGENTFLOW_VALIDATION_CACHE_SECONDS = 300.0 if on else 0
    if cold:
        templates.clear_caches()
        expressions.clear_caches()


def _interleaved(call: Callable[[], Any], rounds: int) -> dict[str, list[float]]:
    """ms per call in each mode, the modes taking turns call by call."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    _cache(True)
    call()  # the "on" side starts from a filled entry, as a repeat finds it
    for _ in range(rounds):
        for mode in MODES:
            _cache(mode == "on", cold=mode == "off, cold")
            start = time.perf_counter()
            call()
            times[mode].append((time.perf_counter() - start) * 1000)
    return times


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(label: str, times: dict[str, list[float]]) -> None:
    cells = [
        f"{statistics.median(v):8.3f} ({_q(v, 0.1):.3f}-{_q(v, 0.9):.3f})" for v in times.values()
    ]
    saved = statistics.median(times["off, warm"]) / statistics.median(times["on"])
    print(f"{label:<38}" + "".join(f"{c:>28}" for c in cells) + f"{saved:>8.1f}x")


def _header(title: str) -> None:
    print(f"\n{title}\n{'':<38}" + "".join(f"{m:>28}" for m in MODES) + f"{'warm/on':>9}")


def _stats(label: str) -> None:
    from workflows.cache import STATS

    print(
        f"  hit rate ({label}): {STATS.hit_rate:.1%} — {STATS.hits} hits, {STATS.misses} misses "
        f"({STATS.stale} with changed stored sources), {STATS.uncached} not looked up (off)"
    )
    STATS.reset()


def _specs() -> dict[str, Any]:
    from tests.runtime.factories import chain_spec

    found: dict[str, Any] = {
        f"example {p.stem}": json.loads(p.read_text())
        for p in sorted((ROOT / "examples").glob("*.json"))
    }
    for n in (50, 1000):
        found[f"{n}-node chain"] = chain_spec(n)
    stored = json.loads((ROOT / "examples/support-desk.json").read_text())
    stored.pop("sources")
    found["support-desk, 3 stored sources"] = stored
    return found


def _tenant() -> Any:
    from sources.services import source_create
    from tenants.services import tenant_create

    tenant = tenant_create(slug=f"bench-{secrets.token_hex(3)}", name="bench")
    tenant.allowed_env = GRANTS
    tenant.save()
    sources = json.loads((ROOT / "examples/support-desk.json").read_text())["sources"]
    for source in sources:
        source_create(
            tenant=tenant,
            name=source["id"],
            kind=source["kind"],
            config=source["config"],
            description="",
            actor="bench",
        )
    return tenant


def bench_validate(tenant: Any, rounds: int) -> None:
    from workflows.services import workflow_validate

    _header("workflow_validate (ms: median (p10-p90))")
    for label, spec in _specs().items():
        call = functools.partial(workflow_validate, spec=spec, tenant=tenant)
        _row(label, _interleaved(call, rounds))
    _stats("workflow_validate")


def bench_sources(tenant: Any, rounds: int) -> None:
    from sources.selectors import source_resolver
    from workflows.cache import _stored_now

    resolve = source_resolver(tenant)
    one, three = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for ref in ("gpt", "dalle", "shop"):
            resolve(ref)
        one.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        _stored_now(tenant, ["gpt", "dalle", "shop"])
        three.append((time.perf_counter() - start) * 1000)
    from django.core.cache import cache

    cache.set("bench-caching-version", 1)
    shared = []
    for _ in range(rounds):
        start = time.perf_counter()
        cache.get("bench-caching-version")
        shared.append((time.perf_counter() - start) * 1000)
    cache.delete("bench-caching-version")
    print(
        f"\nstored sources: resolving 3 refs one query each {_cell(one)}; the cache's one-query "
        f"re-check of 3 refs {_cell(three)}; one Django cache get (a shared version counter "
        f"would need it) {_cell(shared)}"
    )


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ms ({_q(values, 0.1):.3f}-{_q(values, 0.9):.3f})"


def bench_result_size() -> None:
    from runtime.validation import validate_spec
    from tests.runtime.factories import chain_spec

    for n in (50, 1000):
        spec = chain_spec(n)
        text = json.dumps(spec, separators=(",", ":"))
        validate_spec(spec)
        tracemalloc.start()
        result = validate_spec(spec)
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        start = time.perf_counter()
        validate_spec(spec)
        validate_ms = (time.perf_counter() - start) * 1000
        blob = pickle.dumps(result)
        loads = []
        for _ in range(5):
            start = time.perf_counter()
            pickle.loads(blob)
            loads.append((time.perf_counter() - start) * 1000)
        load_ms = statistics.median(loads)
        print(
            f"{n}-node result: ~{held / 1024:.0f} KiB in memory for {len(text) / 1024:.0f} KiB "
            f"of spec JSON; pickled {len(blob) / 1024:.0f} KiB, unpickling {load_ms:.2f} ms "
            f"(median of 5) against validating {validate_ms:.2f} ms"
        )


def _chain5() -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "input", "type": "input"}]
    edges = []
    for i in range(4):
        template = f"{i}: {{{{ final_output or user_input }}}}"
        nodes.append(
            {
                "id": f"t{i}",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": template},
            }
        )
        edges.append({"from": nodes[-2]["id"], "to": f"t{i}"})
    return {"name": "chain5", "start_node": "input", "nodes": nodes, "edges": edges}


def bench_execute(tenant: Any, rounds: int) -> None:
    from django.test import Client

    from tenants.services import api_key_create

    _, secret = api_key_create(tenant=tenant, role="admin", name="bench", actor="bench")
    client = Client(headers={"X-API-Key": secret})
    body = json.dumps({"workflow": _chain5(), "initial_state": {"user_input": "hi"}})

    def execute() -> None:
        response = client.post("/api/v1/workflows/execute", body, content_type="application/json")
        assert response.status_code == 200 and response.json()["status"] == "success", response

    _header("sync execute, 5-node template chain, test client")
    _row("POST /api/v1/workflows/execute", _interleaved(execute, rounds))
    _stats("execute")


def bench_worker_start(tenant: Any, rounds: int) -> None:
    from executions.models import Execution
    from executions.services import execution_create
    from runtime.compiler import compile_workflow
    from workflows.services import workflow_validate

    spec = json.loads((ROOT / "examples/support-desk.json").read_text())
    execution = execution_create(
        tenant=tenant,
        validated=workflow_validate(spec=spec, tenant=tenant),
        initial_state={"user_input": "hi"},
        mode="async",
    )

    def start() -> None:  # Worker._start up to the run: what repeats for every run of a spec
        loaded = Execution.objects.select_related("tenant").get(pk=execution.pk)
        validated = workflow_validate(spec=loaded.spec, tenant=loaded.tenant)
        compile_workflow(validated, state_keys=loaded.initial_state.keys())

    _header("worker start path (load, validate, compile)")
    _row("support-desk", _interleaved(start, rounds))
    _stats("worker start")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench_caching needs PostgreSQL: DATABASE_URL=postgres://…", file=sys.stderr)
        return 2
    with _own_database() as database_url:
        _setup(database_url)
        tenant = _tenant()
        print(
            f"PostgreSQL, Redis {'on' if os.environ.get('REDIS_URL') else 'off'}; "
            f"{args.rounds} interleaved rounds"
        )
        bench_validate(tenant, args.rounds)
        bench_sources(tenant, args.rounds)
        bench_execute(tenant, args.rounds)
        bench_worker_start(tenant, args.rounds)
        print()
        bench_result_size()
    return 0


if __name__ == "__main__":
    sys.exit(main())
