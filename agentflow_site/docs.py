"""The API docs pages (Swagger UI, Redoc), served from the sidecar's static files and fenced in
by a Content-Security-Policy, so they work offline and ask no other host for anything."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.csp import CSP, build_policy
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

# Redoc draws its "API docs by Redocly" logo from cdn.redoc.ly, with no setting to stop it;
# `img-src` keeps the browser from asking (the logo hides itself when it fails to load).
DOCS_POLICY: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.UNSAFE_INLINE],  # drf-spectacular's inline start-up script
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],  # both UIs style elements inline
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "worker-src": [CSP.SELF, "blob:"],  # Redoc's search index runs in a worker
    "connect-src": [CSP.SELF],
}


class _Fenced:
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        response["Content-Security-Policy"] = build_policy(DOCS_POLICY)
        return response


class SwaggerView(_Fenced, SpectacularSwaggerView):
    """Swagger UI, from /static/drf_spectacular_sidecar/."""


class RedocView(_Fenced, SpectacularRedocView):
    """Redoc, from /static/drf_spectacular_sidecar/, without its Google Fonts."""

    template_name = "agentflow_site/redoc.html"
