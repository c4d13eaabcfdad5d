"""The floor for bench_http.py: one Django view, no middleware, no apps, no logging.

Served by the same uvicorn flags as AgentFlow: `uvicorn bench._bare_site:application ...`.
"""

import sys

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

sys.setswitchinterval(0.001)  # as agentflow_site/asgi.py does: the same thread hand-offs

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-" + "x" * 50,
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    LOGGING_CONFIG=None,
    USE_TZ=True,
)


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [path("bare", bare)]
application = get_asgi_application()
