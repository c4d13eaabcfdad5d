from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse


class RequestIdHeaderMiddleware:
    """Echo the request id (kept from an incoming `X-Request-ID`) on every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = str(request_id)
        return response
