"""Renderers beyond JSON."""

from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import JSONRenderer


class EventStreamRenderer(JSONRenderer):
    """Lets a request that accepts only `text/event-stream` (a browser's EventSource) reach the
    events view, which answers with its own stream; an error before the stream starts is still
    a problem+json body (the error handler sets that content type)."""

    media_type = "text/event-stream"
    format = "sse"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return super().render(data, "application/json", renderer_context)
