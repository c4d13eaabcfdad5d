"""Pictures of workflows (runtime.graph_render) as the API and the admin serve them."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

from runtime.graph_render import PictureLimits, workflow_mermaid, workflow_svg

SVG = "svg"
MERMAID = "mermaid"
DRAWERS: dict[str, Callable[[Mapping[str, Any], PictureLimits], str]] = {
    SVG: workflow_svg,
    MERMAID: workflow_mermaid,
}


def picture_limits() -> PictureLimits:
    """As many nodes as the operator lets a spec have: a stored workflow always has a picture."""
    defaults = PictureLimits()
    return PictureLimits(max_nodes=max(defaults.max_nodes, settings.AGENTFLOW_MAX_SPEC_NODES))


def spec_picture(spec: Mapping[str, Any], fmt: str = SVG) -> str:
    """The spec drawn as `fmt` (`svg` or `mermaid`).

    Raises:
        PictureTooLarge: the spec has more nodes or edges than a picture is drawn for.
    """
    return DRAWERS[fmt](spec, picture_limits())


def picture_html(spec: Mapping[str, Any]) -> SafeString:
    """The SVG inline, for a page; it escapes every string of the spec."""
    svg = spec_picture(spec, SVG)
    # safe: the drawing escapes every string it takes from the spec (runtime.graph_render.text)
    frame = '<div class="af-picture" style="overflow-x:auto;max-width:100%">{}</div>'
    return format_html(frame, mark_safe(svg))


class _TextRenderer(BaseRenderer):
    """Text as it is; anything else (an error's problem details) as JSON."""

    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if isinstance(data, str):
            return data.encode("utf-8")
        return JSONRenderer().render(data, None, renderer_context)


class SvgRenderer(_TextRenderer):
    media_type = "image/svg+xml"
    format = SVG


class MermaidRenderer(_TextRenderer):
    media_type = "text/vnd.mermaid"
    format = MERMAID


class PictureNegotiation(DefaultContentNegotiation):
    """`?format=` first, then `Accept`; what cannot be met gets the SVG, never a 406 or a 404
    (the view answers an unknown `?format=` with a 400, after authentication)."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        offered = list(renderers)
        wanted = request.query_params.get("format")
        if wanted is None:
            try:
                return super().select_renderer(request, offered, format_suffix)
            except exceptions.NotAcceptable:
                return offered[0], offered[0].media_type
        chosen = next((r for r in offered if r.format == wanted), offered[0])
        return chosen, chosen.media_type
