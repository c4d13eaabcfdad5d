import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from django.test import override_settings

from tests.proxy import Proxy
from tests.stack import Stack

pytestmark = pytest.mark.django_db


def test_health_reports_every_dependency(api, requires_redis: str) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "0.1.0"
    deps = body["dependencies"]
    assert deps["database"]["status"] == "ok"
    assert deps["redis"]["status"] == "ok"
    # No worker runs in this test process: reported, and the web process stays ready.
    assert deps["workers"]["status"] == "down"
    assert body["status"] == "degraded"
    assert api.get("/health/ready").status_code == 200
    assert api.get("/health/live").json() == {"status": "ok"}
    assert api.get("/api/v1/health").status_code == 200


def test_redis_reads_not_configured_when_unset(api) -> None:
    with override_settings(REDIS_URL=""):
        body = api.get("/health").json()
    assert body["dependencies"]["redis"] == {"status": "not configured"}


DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
}


def test_a_dead_redis_leaves_the_web_process_ready_and_says_it_is_degraded(api) -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0", CACHES=DEAD_REDIS):
        health = api.get("/health")
        ready = api.get("/health/ready")
    assert health.status_code == 200  # the API still answers: not taken out of the balancer
    assert health.json()["status"] == "degraded"
    assert health.json()["dependencies"]["redis"]["status"] == "down"
    assert "Connection" in health.json()["dependencies"]["redis"]["error"]
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"


def test_a_stalled_redis_is_reported_down_within_the_probes_own_time(
    api, requires_redis: str
) -> None:
    """A Redis that accepts connections and never answers: /health does not wait for it."""
    target = urlsplit(requires_redis)
    with Proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        stalled = {
            "default": {**DEAD_REDIS["default"], "LOCATION": f"redis://127.0.0.1:{proxy.port}/0"}
        }
        stalled["default"]["OPTIONS"] = {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}
        with override_settings(REDIS_URL=stalled["default"]["LOCATION"], CACHES=stalled):
            assert api.get("/health").json()["dependencies"]["redis"]["status"] == "ok"
            proxy.stall()
            start = time.monotonic()
            health = api.get("/health")
            took = time.monotonic() - start
    assert health.status_code == 200
    redis = health.json()["dependencies"]["redis"]
    assert redis["status"] == "down"
    assert redis["latency_ms"] <= 2000  # the probe's own bound, as it measured it
    assert took < 10  # (generous: a loaded machine) a stall is not waited out


@pytest.mark.slow
def test_health_answers_in_its_own_time_when_the_database_and_redis_never_answer(
    tmp_path: Path,
) -> None:
    """A database and a Redis that accept connections and then say nothing: /health must still
    answer (503, each named down), not hang with them."""
    holes = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]  # never accept or answer
    db_port, redis_port = (hole.getsockname()[1] for hole in holes)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{db_port}/nothing",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AGENTFLOW_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
    }
    stack = Stack(env, tmp_path)
    try:
        stack.web()  # /health/live needs neither
        answer = httpx2.get(f"{stack.url}/health", timeout=15)
        assert answer.status_code == 503
        deps = answer.json()["dependencies"]
        assert deps["database"]["status"] == "down"
        assert deps["redis"]["status"] == "down"
        assert httpx2.get(f"{stack.url}/health/ready", timeout=15).status_code == 503
    finally:
        stack.stop()
        for hole in holes:
            hole.close()
