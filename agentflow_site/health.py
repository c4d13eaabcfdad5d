"""Health probes: `/health` (full report), `/health/live` and `/health/ready`.

`/health` and `/health/ready` answer 503 when a dependency AgentFlow cannot serve without
(the database; Redis when configured) is down. Workers are reported but do not make the web
process unready: sync runs and the API still work, and queued runs wait for a worker.
"""

import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

OK, DOWN, NOT_CONFIGURED = "ok", "down", "not configured"


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


def dependencies() -> dict[str, dict[str, Any]]:
    redis = _timed(_redis) if settings.REDIS_URL else {"status": NOT_CONFIGURED}
    return {"database": _timed(_database), "redis": redis, "workers": _timed(_workers)}


def _ready(deps: dict[str, dict[str, Any]]) -> bool:
    return deps["database"]["status"] == OK and deps["redis"]["status"] in (OK, NOT_CONFIGURED)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    deps = dependencies()
    ready = _ready(deps)
    status = "ok" if ready and deps["workers"]["status"] == OK else "degraded" if ready else "down"
    body = {"status": status, "version": settings.AGENTFLOW_VERSION, "dependencies": deps}
    return JsonResponse(body, status=200 if ready else 503)


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    deps = dependencies()
    ok = _ready(deps)
    return JsonResponse(
        {"status": "ok" if ok else "down", "dependencies": deps}, status=200 if ok else 503
    )
