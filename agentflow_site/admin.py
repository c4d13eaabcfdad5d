"""The health dashboard, in the admin: `MetricSample` listed as "Health dashboard", its list page
replaced by the dashboard and a `data/` endpoint the page polls. Staff only (any staff user: it
shows no tenant's content, only counts, tokens and cost per tenant)."""

from typing import Any

import structlog
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.safestring import SafeString

from agentflow_site.models import MetricSample
from agentflow_site.observability import charts, dashboard, sampler
from agentflow_site.observability.charts import Line

logger = structlog.get_logger(__name__)

POLL_MS = 5000
PAGE = "admin/agentflow_site/health_dashboard.html"
PANELS = "admin/agentflow_site/health_panels.html"
LEGENDS = {
    "request_rate": "requests",
    "error_rate": "5xx",
    "p50_ms": "p50",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "db_ms": "database",
    "redis_ms": "Redis",
}


@admin.register(MetricSample)
class HealthDashboardAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return _staff(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _staff(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        """The dashboard and its data; no page of single samples (add, change, history)."""
        view = self.admin_site.admin_view
        return [
            path("data/", view(self.data_view), name="agentflow_site_metricsample_data"),
            path("", view(self.changelist_view), name="agentflow_site_metricsample_changelist"),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        window = _window(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Health dashboard",
            "opts": self.model._meta,
            "windows": dashboard.WINDOWS.values(),
            "window": window,
            "poll_ms": POLL_MS,
            **_panels(window),
        }
        return TemplateResponse(request, PAGE, context)

    def data_view(self, request: HttpRequest) -> JsonResponse:
        found = _panels(_window(request))
        html = TemplateResponse(request, PANELS, found).rendered_content
        return JsonResponse({**found["data"], "html": html})


def _staff(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_staff)


def _window(request: HttpRequest) -> dashboard.Window:
    return dashboard.WINDOWS.get(request.GET.get("window", ""), dashboard.WINDOWS["hour"])


def _panels(window: dashboard.Window) -> dict[str, Any]:
    """The dashboard's numbers and charts, with this host's sample taken first if it is due."""
    try:
        sampler.sample_if_due()
    except Exception:  # the page shows what is stored
        logger.exception("health_sample_failed")
    data = dashboard.dashboard_data(window)
    ended = data["totals"]["executions"]
    runs = [(status, status.replace("_", " "), ended[status]) for status in dashboard.STATUSES]
    return {"data": data, "window": window, "charts": _charts(data), "runs": runs}


def _charts(data: dict[str, Any]) -> dict[str, SafeString]:
    series, totals = data["series"], data["totals"]
    times = [moment[11:16] for moment in series["t"]]

    def lines(*names: str) -> list[Line]:
        return [Line(LEGENDS.get(name, name.replace("_", " ")), series[name]) for name in names]

    tenants = totals["tenants"]
    runs = [(status, float(totals["executions"][status])) for status in dashboard.STATUSES]
    return {
        "requests": charts.line_chart("Requests", times, lines("request_rate"), "req/s"),
        "errors": charts.line_chart("Server errors (5xx)", times, lines("error_rate"), "%"),
        "latency": charts.line_chart("Latency", times, lines("p50_ms", "p95_ms", "p99_ms"), "ms"),
        "runs": charts.line_chart("Runs ended", times, lines(*dashboard.STATUSES), ""),
        "load": charts.line_chart("Runs now", times, lines("running", "queued"), ""),
        "workers": charts.line_chart("Live workers", times, lines("workers"), ""),
        "dependencies": charts.line_chart(
            "Database and Redis round trip", times, lines("db_ms", "redis_ms"), "ms"
        ),
        "by_status": charts.bar_chart("Runs ended by status", runs, ""),
        "tokens": charts.bar_chart(
            "Tokens by tenant", [(t["tenant"], float(t["tokens"])) for t in tenants], ""
        ),
        "cost": charts.bar_chart(
            "Cost by tenant", [(t["tenant"], t["cost_usd"]) for t in tenants], "USD"
        ),
    }
