from datetime import UTC
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request

from agentflow_site.params import query_number

MAX_PAGE_SIZE = 200


def _page_size(request: Request, default: int | None) -> int:
    """`?page_size=`: 1 to MAX_PAGE_SIZE, or a 400 naming it (DRF ignores a bad one)."""
    return query_number(
        request.query_params, "page_size", default=default or 50, low=1, high=MAX_PAGE_SIZE
    )


def _bounded(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documented parameters with the bounds `_page_size` enforces."""
    for parameter in parameters:
        if parameter["name"] == "page_size":
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}
        elif parameter["name"] == "page":
            parameter["schema"] = {"type": "integer", "minimum": 1}
    return parameters


class PageNumberPagination(pagination.PageNumberPagination):
    """`{count, next, previous, results}`, `?page=N&page_size=M` (1 to 200; else a 400)."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return _page_size(request, self.page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return _bounded(super().get_schema_operation_parameters(view))


class NewestFirstCursorPagination(pagination.CursorPagination):
    """`{next, previous, results}`, newest first; stable while new rows arrive.

    The first ordering field is a date and time: a cursor's position is one, or the cursor is
    a 404 ("Invalid cursor"), like one DRF cannot decode.
    """

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return _page_size(request, self.page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return _bounded(super().get_schema_operation_parameters(view))

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        if "page" in request.query_params:  # a page number, as /workflows takes: say why not
            raise ValidationError(
                {
                    "page": [
                        "These lists are paged by cursor (stable while new rows arrive), not by "
                        "number: follow the `next` link of the previous page."
                    ]
                }
            )
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Any:
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        # A forged position (`p=xxx`, or an offset PostgreSQL refuses) would reach the query.
        position: Any = None  # typed int by the stubs; DRF keeps the field's value as text
        try:
            moment = parse_datetime(str(cursor.position))
            if moment is not None and moment.tzinfo is not None:
                position = moment.astimezone(UTC).isoformat()
        except (ValueError, OverflowError):
            pass
        if position is None:
            raise NotFound(self.invalid_cursor_message)
        return pagination.Cursor(offset=cursor.offset, reverse=cursor.reverse, position=position)


class AuditCursorPagination(NewestFirstCursorPagination):
    ordering = ("-at", "-id")
