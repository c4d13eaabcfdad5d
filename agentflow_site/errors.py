"""One exception handler: every API error is RFC 9457 `application/problem+json`.

Shape: `{"type", "title", "status", "detail", "instance"}`, plus `errors` — a list of
`{"field", "message"}` naming each bad field — for invalid request bodies.
"""

from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://agentflow.dev/problems/"


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error detail into `[{"field": "a.b.0", "message": ...}]`."""
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out += _flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name)
        return out
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [{"field": prefix, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out += _flatten(item, f"{prefix}.{index}" if prefix else str(index))
        return out
    return [{"field": prefix, "message": str(detail)}]


class InvalidSpec(exceptions.APIException):
    """422 with every problem in `errors` (`{type, message, node_id, path, line, column}`),
    as /workflows/validate reports them."""

    status_code = 422
    default_detail = "The workflow is not valid."
    default_code = "invalid_workflow"

    def __init__(self, errors: list[dict[str, Any]], what: str = "workflow") -> None:
        first = errors[0]["message"] if errors else ""
        super().__init__(f"The {what} has {len(errors)} problem(s); the first: {first}")
        self.errors = errors


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class RunInterrupted(exceptions.APIException):
    """A sync run whose request could not see it to its end (its record could not be written):
    the answer says which execution it was and what is known of it."""

    status_code = 500
    default_detail = "The run could not be completed or recorded."
    default_code = "run_interrupted"

    def __init__(self, execution_id: str, status: str, reason: str) -> None:
        super().__init__(
            f"Execution {execution_id} could not be completed or recorded ({reason}); it was "
            f"stopped, and its status is now {status}. Read it at /api/v1/executions/"
            f"{execution_id} once the service is back; run it again if you need its result."
        )
        self.extra = {"execution_id": execution_id, "execution_status": status}


class FieldRefused(exceptions.APIException):
    """A refusal of one field of the request: its problem's `errors` names the field, as a
    ValidationError's do. A subclass sets `field` (or passes one) and its status and code."""

    field = ""

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.errors = [
            {"field": self.field if field is None else field, "message": str(self.detail)}
        ]


class ContentTooLarge(FieldRefused):
    """413: a body over DATA_UPLOAD_MAX_MEMORY_SIZE, refused before it is read."""

    status_code = 413
    default_detail = "Content too large."
    default_code = "content_too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The body is larger than the {limit:,}-byte limit; send less.")


def problem(
    status_code: int, title: str, detail: str, *, code: str, **extra: Any
) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status_code,
        "detail": detail,
        **extra,
    }


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = ContentTooLarge()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response  # an unexpected error: Django's 500 path logs it
    request = context.get("request")
    code = exc.default_code if isinstance(exc.default_code, str) else "error"
    body = problem(
        response.status_code,
        _title(exc, response.status_code),
        _detail_text(exc),
        code=code,
        instance=request.get_full_path() if request is not None else None,
    )
    if isinstance(exc, exceptions.ValidationError):
        body["title"] = "Invalid request"
        body["errors"] = _flatten(exc.detail)
        body["detail"] = "; ".join(
            f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in body["errors"]
        )
    if isinstance(getattr(exc, "errors", None), list):
        body["errors"] = exc.errors  # type: ignore[attr-defined]
    body.update(getattr(exc, "extra", {}))
    if isinstance(exc, exceptions.Throttled):
        body["retry_after"] = response.headers.get("Retry-After")
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def _title(exc: exceptions.APIException, status_code: int) -> str:
    """The same for every occurrence (RFC 9457): a default detail with a placeholder
    (`Method "{method}" not allowed.`) gives way to the status phrase."""
    title = str(exc.default_detail)
    inherited = title == str(exceptions.APIException.default_detail) and status_code < 500
    if "{" in title or inherited:  # nor "A server error occurred" on a 4xx that kept the base's
        title = HTTPStatus(status_code).phrase.capitalize()
    return title.rstrip(".")


def _detail_text(exc: exceptions.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, list | dict):
        return "Invalid request."
    return str(detail)


def not_found_view(request: Any, exception: Exception | None = None) -> Any:
    """Outside DRF too, an unknown URL answers problem+json."""
    from django.http import JsonResponse

    body = problem(
        status.HTTP_404_NOT_FOUND,
        "Not found",
        "No such resource.",
        code="not_found",
        instance=request.get_full_path(),
    )
    return JsonResponse(body, status=404, content_type=PROBLEM_CONTENT_TYPE)


def server_error_view(request: Any) -> Any:
    from django.http import JsonResponse

    body = problem(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "Server error",
        "Something went wrong on our side; it has been logged.",
        code="server_error",
        instance=request.get_full_path(),
    )
    return JsonResponse(body, status=500, content_type=PROBLEM_CONTENT_TYPE)


def bad_request_view(request: Any, exception: Exception | None = None) -> Any:
    """A request Django refused before any view (too large, a bad Host): problem+json too."""
    from django.http import JsonResponse

    body = problem(
        status.HTTP_400_BAD_REQUEST,
        "Bad request",
        "The request was refused before it reached the API (too large, or malformed).",
        code="bad_request",
        instance=request.path,
    )
    return JsonResponse(body, status=400, content_type=PROBLEM_CONTENT_TYPE)
