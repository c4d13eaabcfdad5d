"""How each node type and arrow kind looks, in one place for the SVG and the Mermaid text."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.graph_render.diagram import Box


@dataclass(frozen=True)
class NodeStyle:
    shape: str
    """A key of `runtime.graph_render.svg.SHAPES` (and of the Mermaid shapes)."""
    fill: str
    stroke: str
    text: str = "#111827"
    dashed: bool = False


@dataclass(frozen=True)
class ArrowStyle:
    stroke: str
    dash: str = ""
    width: float = 1.5


NODE_STYLES = {
    "input": NodeStyle("stadium", "#dbeafe", "#2563eb"),
    "router": NodeStyle("hexagon", "#fef3c7", "#d97706"),
    "llm": NodeStyle("rounded", "#ede9fe", "#7c3aed"),
    "image": NodeStyle("double", "#fce7f3", "#db2777"),
    "db": NodeStyle("cylinder", "#dcfce7", "#16a34a"),
    "aggregator": NodeStyle("trapezoid", "#ccfbf1", "#0d9488"),
    "http": NodeStyle("parallelogram", "#e0f2fe", "#0284c7"),
    "workflow": NodeStyle("double", "#fef9c3", "#a16207"),
}
"""Built-in node types; any other type (a plugin's) is drawn as `PLUGIN_STYLE`."""

PLUGIN_STYLE = NodeStyle("rect", "#f3f4f6", "#4b5563", dashed=True)
KIND_STYLES = {
    "start": NodeStyle("stadium", "#1f2937", "#1f2937", text="#ffffff"),
    "end": NodeStyle("stadium", "#1f2937", "#1f2937", text="#ffffff"),
    "missing": NodeStyle("rect", "#fee2e2", "#dc2626", text="#991b1b", dashed=True),
}

ARROW_STYLES = {
    "always": ArrowStyle("#64748b"),
    "condition": ArrowStyle("#64748b"),
    "default": ArrowStyle("#64748b", dash="6 4"),
    "loop": ArrowStyle("#d97706", width=1.8),
    "start": ArrowStyle("#1f2937"),
}

QUEUE_COLOUR = "#0f766e"
LOOP_COLOUR = "#b45309"


def node_style(box: Box) -> NodeStyle:
    if box.kind != "node":
        return KIND_STYLES[box.kind]
    return NODE_STYLES.get(box.type, PLUGIN_STYLE)
