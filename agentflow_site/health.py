"""Health probes: `/health` (full report), `/health/live` and `/health/ready`.

`/health` and `/health/ready` answer 503 only when the database is down: nothing can be served
without it. Redis down (or stalled) and no live worker make them answer 200 `degraded`, naming
what is down: the API keeps answering without Redis (its throttles and cache fail open, rate
limits and budgets wait for it, then refuse), and queued runs wait for a worker. Taking every
web process out of the load balancer for a Redis outage would turn a degraded service into none.
"""

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from agentflow_site.plugins import plugins_health

OK, DEGRADED, DOWN, NOT_CONFIGURED = "ok", "degraded", "down", "not configured"
PROBE_SECONDS = 1.5
"""How long a probe waits for each dependency (all at once): `/health` answers within about
this, whatever a dependency does (a stalled database, an exhausted pool, Redis cut off)."""


def _timed(check: Any) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result: dict[str, Any] = {"status": OK, **(check() or {})}
    except Exception as exc:  # a probe reports failures, it never raises
        result = {"status": DOWN, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return result


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _redis() -> dict[str, Any]:
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()
    return {}


def _workers() -> dict[str, Any]:
    """Run workers (`manage.py runworker`) that beat within the stale period."""
    from django.utils import timezone

    from executions.models import Worker
    from executions.services import heartbeat_stale

    alive = Worker.objects.filter(beat_at__gte=timezone.now() - heartbeat_stale())
    processes = list(alive.values_list("capacity", "running"))
    return {
        "status": OK if processes else DOWN,
        "processes": len(processes),
        "capacity": sum(capacity for capacity, _ in processes),
        "running": sum(running for _, running in processes),
    }


def _on_own_thread(check: Callable[[], dict[str, Any]], into: dict[str, Any]) -> None:
    try:
        into.update(_timed(check))
    finally:
        connections.close_all()  # this thread's connections go back to the pool


def dependencies() -> dict[str, dict[str, Any]]:
    """Each dependency checked on a thread of its own, all at once; one that has not answered
    within PROBE_SECONDS is reported down (its thread ends on its own, unwaited)."""
    checks: dict[str, Callable[[], dict[str, Any]]] = {"database": _database}
    if settings.REDIS_URL:
        checks["redis"] = _redis
    checks["workers"] = _workers
    results: dict[str, dict[str, Any]] = {name: {} for name in checks}
    threads = [
        threading.Thread(target=_on_own_thread, args=(check, results[name]), daemon=True)
        for name, check in checks.items()
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, started + PROBE_SECONDS - time.monotonic()))
    waited = round((time.monotonic() - started) * 1000, 2)
    late = {"status": DOWN, "error": f"no answer within {PROBE_SECONDS:g} s", "latency_ms": waited}
    report = {name: dict(result) or late for name, result in results.items()}
    report.setdefault("redis", {"status": NOT_CONFIGURED})
    return {name: report[name] for name in ("database", "redis", "workers")}


def _status(deps: dict[str, dict[str, Any]]) -> str:
    """`down` without the database; `degraded` with Redis or every worker down; else `ok`."""
    if deps["database"]["status"] != OK:
        return DOWN
    others = (deps["redis"]["status"], deps["workers"]["status"])
    return OK if all(found in (OK, NOT_CONFIGURED) for found in others) else DEGRADED


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    deps = dependencies()
    status = _status(deps)
    # An enabled plugin that did not load degrades the service (its specs are refused) but
    # never makes it unready: the other node types all work.
    plugins = plugins_health()
    if status == OK and plugins["status"] != OK:
        status = DEGRADED
    body = {
        "status": status,
        "version": settings.AGENTFLOW_VERSION,
        "dependencies": deps,
        "plugins": plugins,
    }
    return JsonResponse(body, status=503 if status == DOWN else 200)


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    body = {"status": "ok"}
    if instance := os.environ.get("AGENTFLOW_INSTANCE"):  # scripts/serve.sh: this start's id
        body["instance"] = instance
    return JsonResponse(body)


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    deps = dependencies()
    status = _status(deps)
    return JsonResponse(
        {"status": status, "dependencies": deps}, status=503 if status == DOWN else 200
    )
