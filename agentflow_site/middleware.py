import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from agentflow_site.errors import (
    PROBLEM_CONTENT_TYPE,
    not_found_view,
    problem,
    server_error_view,
)
from agentflow_site.observability.errors import capture_exception
from agentflow_site.parsers import text_problem

Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


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


class UnstorableTextMiddleware:
    """A NUL (or an unpaired surrogate) in the path is a 404, in a query parameter or a header
    a 400 naming it: before any view filters on it, as PostgreSQL refuses such text (a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if text_problem(request.path):
            return not_found_view(request)
        for name, values in request.GET.lists():
            problem_found = next(filter(None, map(text_problem, [name, *values])), None)
            if problem_found:
                return _refused(request, name, f"This query parameter {problem_found}.")
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and text_problem(value):
                header = key[5:].replace("_", "-").title()
                return _refused(request, header, f"This header {text_problem(value)}.")
        return self.get_response(request)


class ProblemErrorsMiddleware:
    """An exception no view handled answers problem+json on the API and the health probes, with
    DEBUG on too (Django's debug page is HTML); it is logged with its traceback."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(("/api/", "/health")):
            return None  # the admin's own pages keep Django's
        structlog.get_logger(__name__).exception("unhandled_exception", path=request.path)
        capture_exception(exception)  # answered here, so Django's integration never sees it
        response: HttpResponse = server_error_view(request)
        return response


def _refused(request: HttpRequest, field: str, message: str) -> HttpResponse:
    shown = field.encode("unicode_escape").decode("ascii")
    body = problem(
        400,
        "Invalid request",
        f"{shown}: {message}",
        code="invalid",
        instance=request.path,
        errors=[{"field": shown, "message": message}],
    )
    return JsonResponse(body, status=400, content_type=PROBLEM_CONTENT_TYPE)


class BodyLimitMiddleware:
    """ASGI, around Django: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is answered before it is
    read, and a chunked body gets the Content-Length DRF reads bodies by.

    Django's ASGI handler reads a whole body into a temporary file before any view runs, so a
    1 GiB upload was received (7.8 s) before its 413 or 401; and DRF takes a body without a
    Content-Length for an empty one. Over the limit (declared, or counted while a chunked body
    arrives), Django gets an empty body and that length: `request.body` refuses it unread (a
    413, or a route's own answer such as spec_too_large), authentication still answers first
    (401), and the connection closes after the answer, so the rest is never read.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = _content_length(scope)
        if declared is not None:
            if limit is not None and declared > limit:
                await self.app(scope, _no_body(), _closing(send))
            else:
                await self.app(scope, receive, send)
            return
        read = await _read_body(receive, limit)
        if read is None:
            return  # the client left before its body arrived: nothing to answer
        body, complete = read
        if not complete:
            await self.app(_with_length(scope, len(body)), _no_body(), _closing(send))
        else:
            scope = _with_length(scope, len(body)) if body else scope
            await self.app(scope, _replay(body, receive), send)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Django has no lifespan events: they are answered here. Passed on, Django raised, which
    uvicorn takes for "unsupported" but error tracking reported at every start."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _with_length(scope: dict[str, Any], length: int) -> dict[str, Any]:
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


async def _read_body(receive: Receive, limit: int | None) -> tuple[bytes, bool] | None:
    """The body, and whether it all came within `limit` (the part read so far if not); None
    when the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, then the client's own messages (its disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _no_body() -> Receive:
    """An empty body, then nothing: the rest of the client's is never read. Django's wait
    for a disconnect is cancelled once it has answered."""
    pending = [{"type": "http.request", "body": b"", "more_body": False}]

    async def empty() -> Message:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return empty


def _closing(send: Send) -> Send:
    """`send` with `Connection: close` on the answer, so the server stops reading the body."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return closing
