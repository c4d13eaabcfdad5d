from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from agentflow_site import converters, health

converters.register()

handler400 = "agentflow_site.errors.bad_request_view"
handler404 = "agentflow_site.errors.not_found_view"
handler500 = "agentflow_site.errors.server_error_view"

api_v1: list[URLPattern | URLResolver] = [
    path("health", health.health, name="api-health"),
    path("", include("tenants.urls")),
    path("", include("executions.urls")),  # before workflows: /workflows/execute
    path("", include("workflows.urls")),
    path("", include("sources.urls")),
]

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("admin/", admin.site.urls),
]
