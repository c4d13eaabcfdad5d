"""Pictures of a workflow as its author wrote it: an SVG drawn here, with no browser and no
network, and Mermaid text for docs. (`runtime.graph` is something else: the validator's graph
questions.)

    svg = workflow_svg(spec)          # a WorkflowSpec, or its JSON (valid or not)
    text = workflow_mermaid(spec)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from runtime.graph_render.diagram import Diagram, PictureLimits, PictureTooLarge, diagram_of
from runtime.graph_render.mermaid import render_mermaid
from runtime.graph_render.svg import render_svg

__all__ = [
    "Diagram",
    "PictureLimits",
    "PictureTooLarge",
    "diagram_of",
    "render_mermaid",
    "render_svg",
    "workflow_mermaid",
    "workflow_svg",
]


def workflow_svg(spec: Mapping[str, Any] | BaseModel, limits: PictureLimits | None = None) -> str:
    """The workflow's picture as an SVG document.

    Raises:
        PictureTooLarge: more nodes or edges than `limits` allow.
    """
    return render_svg(diagram_of(spec, limits), limits)


def workflow_mermaid(
    spec: Mapping[str, Any] | BaseModel, limits: PictureLimits | None = None
) -> str:
    """The workflow as Mermaid flowchart text.

    Raises:
        PictureTooLarge: more nodes or edges than `limits` allow.
    """
    return render_mermaid(diagram_of(spec, limits))
