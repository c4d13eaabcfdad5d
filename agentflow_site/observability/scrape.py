"""`GET /metrics`: the samples of every AgentFlow process on this host, for Prometheus.

A scrape is allowed when it carries `Authorization: Bearer <AGENTFLOW_METRICS_TOKEN>`, or comes
from an address in AGENTFLOW_METRICS_ALLOWED_NETWORKS (the connecting address, REMOTE_ADDR: a
reverse proxy in front makes every scrape its own, so list networks only where Prometheus
connects directly). With neither set every scrape is refused, except from loopback with DEBUG
on. AGENTFLOW_METRICS=off: 404.
"""

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from agentflow_site.errors import PROBLEM_CONTENT_TYPE, problem
from agentflow_site.observability import metrics, multiprocess


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics.enabled():
        raise Http404
    refused = _refusal(request)
    if refused is not None:
        return refused
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(_registry()), content_type=content_type)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess.directory())
    registry.register(metrics.DatabaseCollector())
    return registry


def _refusal(request: HttpRequest) -> HttpResponse | None:
    token = settings.AGENTFLOW_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return None
    if _allowed_address(request.META.get("REMOTE_ADDR", "")):
        return None
    if token:
        detail = "Send the metrics token: `Authorization: Bearer <AGENTFLOW_METRICS_TOKEN>`."
        answer = _problem(request, 401, "Unauthorized", detail, "not_authenticated")
        answer["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return answer
    detail = (
        "Metrics are served only to AGENTFLOW_METRICS_ALLOWED_NETWORKS or with "
        "AGENTFLOW_METRICS_TOKEN; this address is not allowed."
    )
    return _problem(request, 403, "Forbidden", detail, "permission_denied")


def _allowed_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in allowed_networks())


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The setting's networks; loopback with DEBUG on when it is empty and no token is set."""
    listed = settings.AGENTFLOW_METRICS_ALLOWED_NETWORKS
    if not listed and settings.DEBUG and not settings.AGENTFLOW_METRICS_TOKEN:
        listed = ["127.0.0.0/8", "::1/128"]
    return [ipaddress.ip_network(entry, strict=False) for entry in listed]


def _problem(request: HttpRequest, status: int, title: str, detail: str, code: str) -> JsonResponse:
    body = problem(status, title, detail, code=code, instance=request.path)
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)
