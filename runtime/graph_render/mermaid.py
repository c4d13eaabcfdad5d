"""A diagram as Mermaid flowchart text, for pasting into docs.

Boxes get generated ids (`n1`, `n2`, …): a node id such as `end` or `o-x` means something to
Mermaid's parser. Every label is quoted, and the characters that could end a quote, a label or
a line, or start markup, are written as Mermaid entity codes (`#34;` for `"`).
"""

from __future__ import annotations

import re

from runtime.graph_render.diagram import Arrow, Box, Diagram
from runtime.graph_render.styles import NODE_STYLES, NodeStyle, node_style
from runtime.graph_render.text import clean, clip

SHAPES = {
    "rect": ('["', '"]'),
    "rounded": ('("', '")'),
    "stadium": ('(["', '"])'),
    "hexagon": ('{{"', '"}}'),
    "trapezoid": ('[/"', '"\\]'),
    "parallelogram": ('[/"', '"/]'),
    "cylinder": ('[("', '")]'),
    "double": ('[["', '"]]'),
}
ARROWS = {"always": "-->", "condition": "-->", "default": "-.->", "loop": "==>", "start": "-->"}
_ESCAPED = re.compile(r"""[#"<>&`|\[\](){}\\;]""")
LABEL_CHARS = 120


def render_mermaid(diagram: Diagram) -> str:
    """Mermaid `flowchart TD` text of `diagram`, styled by node type."""
    names = {box.id: f"n{i}" for i, box in enumerate(diagram.boxes)}
    title = clip(clean(diagram.name), 200).replace("%%", "% %")
    lines = [
        f"%% AgentFlow workflow: {title}" if title else "%% AgentFlow workflow",
        "flowchart TD",
    ]
    lines += [f"    {names[box.id]}{_node(box)}" for box in diagram.boxes]
    lines += [f"    {_edge(arrow, names)}" for arrow in diagram.arrows]
    lines += _class_lines(diagram, names)
    return "\n".join(lines) + "\n"


def escape(text: str) -> str:
    """Text safe inside a quoted Mermaid label: one line, no quote, bracket, pipe or markup."""
    return _ESCAPED.sub(lambda m: f"#{ord(m.group())};", clean(text))


def _node(box: Box) -> str:
    opening, closing = SHAPES[node_style(box).shape]
    if box.kind in ("start", "end"):
        return f"{opening}{box.kind}{closing}"
    kind = "missing: no such node" if box.kind == "missing" else box.type
    parts = [box.id, kind, *box.badges]
    label = "<br/>".join(escape(clip(part, LABEL_CHARS)) for part in parts)
    return f"{opening}{label}{closing}"


def _edge(arrow: Arrow, names: dict[str, str]) -> str:
    link = ARROWS[arrow.kind]
    source, target = names[arrow.source], names[arrow.target]
    if not arrow.labels:
        return f"{source} {link} {target}"
    label = "<br/>".join(escape(clip(label.text, LABEL_CHARS)) for label in arrow.labels)
    return f'{source} {link}|"{label}"| {target}'


def _class_lines(diagram: Diagram, names: dict[str, str]) -> list[str]:
    members: dict[str, tuple[NodeStyle, list[str]]] = {}
    for box in diagram.boxes:
        members.setdefault(_class_of(box), (node_style(box), []))[1].append(names[box.id])
    lines = []
    for cls, (style, ids) in members.items():
        lines.append(f"    classDef {cls} {_class_def(style)}")
        lines.append(f"    class {','.join(ids)} {cls}")
    lines += [
        f"    style {names[box.id]} stroke-width:3px" for box in diagram.boxes if box.is_start
    ]
    return lines


def _class_of(box: Box) -> str:
    if box.kind != "node":
        return f"k_{box.kind}"
    return f"t_{box.type}" if box.type in NODE_STYLES else "t_plugin"


def _class_def(style: NodeStyle) -> str:
    dash = ",stroke-dasharray:5 3" if style.dashed else ""
    return f"fill:{style.fill},stroke:{style.stroke},color:{style.text}{dash}"
