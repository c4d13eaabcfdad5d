"""Counts and times every request Django answers (agentflow_http_* metrics)."""

import json
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from agentflow_site.errors import PROBLEM_BASE, PROBLEM_CONTENT_TYPE
from agentflow_site.observability import metrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"


class MetricsMiddleware:
    """Outermost: the time and status of everything, by the URL pattern that matched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not metrics.enabled():
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in METHODS else "other"
        metrics.http_answered(
            route(request),
            method or "other",
            response.status_code,
            time.perf_counter() - started,
            problem_type(response),
        )
        return response


def route(request: HttpRequest) -> str:
    match = request.resolver_match
    return "/" + match.route if match is not None and match.route else UNMATCHED


def problem_type(response: HttpResponse) -> str:
    """A problem+json answer's type (its URI's last part); "" for any other answer."""
    if not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
        return ""
    data = getattr(response, "data", None)
    if not isinstance(data, dict):
        try:
            data = json.loads(response.content)
        except (ValueError, AttributeError):
            return "unknown"
    kind = str(data.get("type", "")) if isinstance(data, dict) else ""
    return kind.removeprefix(PROBLEM_BASE) if kind.startswith(PROBLEM_BASE) else "unknown"
