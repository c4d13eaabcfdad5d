from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView

from agentflow_site import converters, docs, health, views
from agentflow_site.observability import scrape
from executions.admin_run import start_run_view

converters.register()

handler400 = "agentflow_site.errors.bad_request_view"
handler404 = "agentflow_site.errors.not_found_view"
handler500 = "agentflow_site.errors.server_error_view"

api_v1: list[URLPattern | URLResolver] = [
    path("health", health.health, name="api-health"),
    path("metrics", scrape.metrics_view, name="api-metrics"),
    path("", include("tenants.urls")),
    path("", include("executions.urls")),  # before workflows: /workflows/execute
    path("", include("workflows.urls")),
    path("", include("schedules.urls")),
    path("", include("sources.urls")),
]

urlpatterns = [
    path("", views.start_page, name="start"),
    path("metrics", scrape.metrics_view, name="metrics"),
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", docs.SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", docs.RedocView.as_view(url_name="schema"), name="redoc"),
    path(  # beside the workflow's admin pages; executions' code (workflows never imports it)
        "admin/workflows/workflow/<str:object_id>/run/",
        admin.site.admin_view(start_run_view),
        name="workflow-run",
    ),
    path("admin/", admin.site.urls),
]
