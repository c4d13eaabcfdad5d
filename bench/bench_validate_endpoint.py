"""What `POST /api/v1/workflows/validate` adds over validating in-process.

Run: `python bench/bench_validate_endpoint.py [--repeat N]`. Starts Django in-process on a
throw-away SQLite database (no server needed), makes a tenant and a key, then times the same
50-node spec (as JSON text) through `validate_spec` directly and through the full request path
(middleware, key authentication, throttle, view, JSON rendering) with Django's test client.
Target: the endpoint adds under 10 ms at the median.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _setup() -> None:
    os.environ["AGENTFLOW_DATA_DIR"] = tempfile.mkdtemp(prefix="agentflow-bench-")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["API_THROTTLE_RATE"] = "1000000/min"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentflow_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _ms(fn: Callable[[], None], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    _setup()
    from django.test import Client

    from runtime.validation import validate_spec
    from tenants.services import api_key_create, tenant_create
    from tests.runtime.factories import chain_spec

    tenant = tenant_create(slug="bench", allowed_env=["K"])
    _, key = api_key_create(tenant=tenant, role="viewer")
    text = json.dumps(chain_spec(50), indent=2)
    client = Client(HTTP_X_API_KEY=key)

    def direct() -> None:
        assert validate_spec(text).valid

    def endpoint() -> None:
        response = client.post("/api/v1/workflows/validate", text, content_type="application/json")
        assert response.status_code == 200 and response.json()["valid"], response.content[:300]

    for fn in (direct, endpoint):
        _ms(fn, 20)  # warm up: imports, caches, the first queries
    inproc = _ms(direct, args.repeat)
    http = _ms(endpoint, args.repeat)
    med_in, med_http = statistics.median(inproc), statistics.median(http)
    print(f"50-node spec, {len(text):,} bytes, {args.repeat} runs each")
    print(f"  validate_spec in-process   median {med_in:7.2f} ms")
    print(f"  POST /workflows/validate   median {med_http:7.2f} ms")
    print(f"  the endpoint adds          median {med_http - med_in:7.2f} ms   (target < 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
