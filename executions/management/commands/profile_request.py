"""`manage.py profile_request GET /api/v1/workflows`: profile one endpoint with pyinstrument.

The request goes through the whole middleware stack and view in this process (Django's test
client: no server, no network), against the configured database, after one unprofiled call
that warms caches and imports. Nothing is exposed over HTTP: there is no switch a caller could
turn on, and the profile is a file only the operator reads.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.http import HttpResponse
from django.test import Client

from agentflow_site.observability.profiling import profiled_call

KEY_ENV = "AGENTFLOW_PROFILE_KEY"
METHODS = ("get", "post", "put", "patch", "delete")


class Command(BaseCommand):
    help = (
        "Profile one endpoint (pyinstrument): call it --repeat times in this process after one "
        f"warm-up call, and write the HTML profile. The API key is read from ${KEY_ENV} (or "
        "--key-env), never from the command line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("method", choices=[m.upper() for m in METHODS] + list(METHODS))
        parser.add_argument("path", help="e.g. /api/v1/workflows")
        parser.add_argument("--data", help="a JSON body, or @file")
        parser.add_argument("--key-env", default=KEY_ENV, help="variable holding the API key")
        parser.add_argument("--repeat", type=int, default=1, help="calls profiled (default 1)")
        parser.add_argument("--output", help="the HTML file (default: DATA_DIR/profiles/…)")

    def handle(self, *args: Any, **opts: Any) -> None:
        call = _caller(opts)
        warm = call()
        self.stdout.write(f"warm-up: {warm.status_code}")
        repeat = max(1, opts["repeat"])
        answers, profile = profiled_call(
            lambda: [call() for _ in range(repeat)], f"{opts['method']} {opts['path']}"
        )
        output = Path(opts["output"] or _default_output())
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(profile.html, encoding="utf-8")
        codes = sorted({answer.status_code for answer in answers})
        per_call = profile.duration / repeat * 1000
        self.stdout.write(f"{repeat} call(s), status {codes}, {per_call:.1f} ms each: {output}")


def _caller(opts: dict[str, Any]) -> Callable[[], HttpResponse]:
    headers = {}
    key = os.environ.get(opts["key_env"], "")
    if key:
        headers["X-API-Key"] = key
    body = _body(opts["data"])
    send = getattr(Client(headers=headers), opts["method"].lower())
    host = next((h for h in settings.ALLOWED_HOSTS if "*" not in h), "localhost").lstrip(".")

    def call() -> HttpResponse:
        kwargs: dict[str, Any] = {"secure": True, "HTTP_HOST": host}
        if body is not None:
            kwargs |= {"data": body, "content_type": "application/json"}
        return send(opts["path"], **kwargs)

    return call


def _body(data: str | None) -> str | None:
    if data is None or not data.startswith("@"):
        return data
    try:
        return Path(data[1:]).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"Cannot read {data[1:]}: {exc.strerror}.") from exc


def _default_output() -> Path:
    return Path(settings.DATA_DIR) / "profiles" / f"request-{time.strftime('%Y%m%d-%H%M%S')}.html"
