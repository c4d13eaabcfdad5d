"""A diagram drawn as one self-contained SVG document: no script, no stylesheet, no external
reference, every spec string escaped. Colours are presentation attributes, so a page may restyle
a node (`[data-node-id="writer"] .af-shape`) without fighting a stylesheet of ours."""

from __future__ import annotations

from collections.abc import Callable

from runtime.graph_render.diagram import Arrow, Box, Diagram, PictureLimits
from runtime.graph_render.layout import Placed, Point, Route, Size, layout
from runtime.graph_render.styles import (
    ARROW_STYLES,
    LOOP_COLOUR,
    QUEUE_COLOUR,
    NodeStyle,
    node_style,
)
from runtime.graph_render.text import clean, clip, width, xml_escape

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
ID_SIZE = 13.0
TYPE_SIZE = 11.0
LABEL_SIZE = 11.0
LINE = 15.0
LABEL_LINE = 14.0
PAD_X = 14.0
PAD_Y = 8.0
MIN_WIDTH = 96.0
SLANT = 14.0
"""How far a hexagon, trapezoid or parallelogram leans in at its sides."""
TYPE_CHARS = 40
LABEL_CHARS = 48
TITLE_CHARS = 400
LEANING = frozenset({"hexagon", "trapezoid", "parallelogram"})
TOP_INSET = {"cylinder": 6.0}
"""Room a shape's top takes from its text (a cylinder's rim)."""


def render_svg(diagram: Diagram, limits: PictureLimits | None = None) -> str:
    """The SVG document of `diagram`, laid out top to bottom."""
    placed = layout(diagram, box_size, label_size, limits)
    w, h = _n(placed.width), _n(placed.height)
    title = xml_escape(clip(f"Workflow {diagram.name}" if diagram.name else "Workflow", 200))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="af-graph" viewBox="0 0 {w} {h}" '
        f'width="{w}" height="{h}" role="img" aria-label="{title}" font-family="{FONT}">',
        f"<title>{title}</title>",
        _markers(),
        '<g class="af-edges">',
        *(_arrow(a, r) for a, r in zip(diagram.arrows, placed.routes, strict=True)),
        "</g>",
        '<g class="af-nodes">',
        *(_box(box, placed.boxes[box.id]) for box in diagram.boxes),
        "</g>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def box_size(box: Box) -> Size:
    lines = _box_lines(box)
    style = node_style(box)
    widest = max(width(text, size) for text, size, _ in lines)
    lean = 2 * SLANT if style.shape in LEANING else 0.0
    if box.kind in ("start", "end"):
        return max(widest + 2 * PAD_X, 64.0), 26.0
    inset = TOP_INSET.get(style.shape, 0.0)
    return max(widest + 2 * PAD_X + lean, MIN_WIDTH), len(lines) * LINE + 2 * PAD_Y + inset


def label_size(arrow: Arrow) -> Size:
    lines = _label_lines(arrow)
    return max(width(t, LABEL_SIZE) for t, _ in lines) + 10, len(lines) * LABEL_LINE + 6


def _box_lines(box: Box) -> list[tuple[str, float, str]]:
    """(text, font size, class) of each line in a box."""
    if box.kind in ("start", "end"):
        return [(box.kind, TYPE_SIZE, "af-node-type")]
    kind = "missing: no such node" if box.kind == "missing" else clip(clean(box.type), TYPE_CHARS)
    lines = [(clean(box.id), ID_SIZE, "af-node-id"), (kind, TYPE_SIZE, "af-node-type")]
    lines += [(clip(clean(b), LABEL_CHARS), TYPE_SIZE, "af-badge") for b in box.badges]
    return lines


def _label_lines(arrow: Arrow) -> list[tuple[str, str]]:
    return [(clip(clean(label.text), LABEL_CHARS), f"af-{label.kind}") for label in arrow.labels]


def _n(value: float) -> str:
    """A coordinate, short: one decimal at most."""
    return f"{value:.1f}".removesuffix(".0")


def _markers() -> str:
    return "".join(
        [
            "<defs>",
            *(
                f'<marker id="af-arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" '
                f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
                f'<path d="M0,0 L10,5 L0,10 z" fill="{style.stroke}"/></marker>'
                for kind, style in ARROW_STYLES.items()
            ),
            "</defs>",
        ]
    )


def _arrow(arrow: Arrow, route: Route) -> str:
    style = ARROW_STYLES[arrow.kind]
    dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
    path = _loop_path(route) if route.self_loop else _curve(route.points)
    title = xml_escape(
        clip(" · ".join(label.text for label in arrow.labels) or "always", TITLE_CHARS)
    )
    return "".join(
        [
            f'<g class="af-edge af-edge-{arrow.kind}" data-from="{xml_escape(arrow.source)}" '
            f'data-to="{xml_escape(arrow.target)}"><title>{title}</title>',
            f'<path class="af-edge-line" d="{path}" fill="none" stroke="{style.stroke}" '
            f'stroke-width="{style.width}"{dash} marker-end="url(#af-arrow-{arrow.kind})"/>',
            _edge_label(arrow, route.label) if route.label is not None else "",
            "</g>",
        ]
    )


def _curve(points: tuple[Point, ...]) -> str:
    """Through every point, leaving and entering each vertically (an S between ranks)."""
    (x, y), rest = points[0], points[1:]
    parts = [f"M{_n(x)},{_n(y)}"]
    for nx, ny in rest:
        mid = (y + ny) / 2
        parts.append(f"C{_n(x)},{_n(mid)} {_n(nx)},{_n(mid)} {_n(nx)},{_n(ny)}")
        x, y = nx, ny
    return " ".join(parts)


def _loop_path(route: Route) -> str:
    (x0, y0), (x1, y1) = route.points
    reach = x0 + 30
    return (
        f"M{_n(x0)},{_n(y0)} C{_n(reach)},{_n(y0 - 14)} {_n(reach)},{_n(y1 + 14)} {_n(x1)},{_n(y1)}"
    )


def _edge_label(arrow: Arrow, centre: Point) -> str:
    lines = _label_lines(arrow)
    w, h = label_size(arrow)
    x, y = centre
    top = y - h / 2 + 3 + LABEL_LINE - 3.5
    spans = "".join(
        f'<text class="{cls}" x="{_n(x)}" y="{_n(top + i * LABEL_LINE)}" '
        f'fill="{_LABEL_COLOURS[cls]}">{xml_escape(text)}</text>'
        for i, (text, cls) in enumerate(lines)
    )
    return (
        f'<g class="af-edge-label" font-size="{_n(LABEL_SIZE)}" text-anchor="middle">'
        f'<rect x="{_n(x - w / 2)}" y="{_n(y - h / 2)}" width="{_n(w)}" height="{_n(h)}" '
        f'rx="3" fill="#ffffff" fill-opacity="0.92" stroke="#cbd5e1"/>{spans}</g>'
    )


_LABEL_COLOURS = {
    "af-condition": "#334155",
    "af-default": "#64748b",
    "af-loop": LOOP_COLOUR,
    "af-queue": QUEUE_COLOUR,
    "af-rate": QUEUE_COLOUR,
}


def _box(box: Box, at: Placed) -> str:
    style = node_style(box)
    lines = _box_lines(box)
    stroke = 2.6 if box.is_start else 1.4
    dash = ' stroke-dasharray="5 3"' if style.dashed else ""
    shape = SHAPES[style.shape](at.w, at.h)
    title = xml_escape(clip(" · ".join(text for text, _, _ in lines), TITLE_CHARS))
    start = ' data-start="true"' if box.is_start else ""
    return "".join(
        [
            f'<g class="af-node af-node-{box.kind}" data-node-id="{xml_escape(box.id)}" '
            f'data-node-type="{xml_escape(box.type)}"{start} '
            f'transform="translate({_n(at.x)},{_n(at.y)})"><title>{title}</title>',
            f'<g class="af-shape" fill="{style.fill}" stroke="{style.stroke}" '
            f'stroke-width="{stroke}"{dash}>{shape}</g>',
            _box_text(lines, at.h, style),
            "</g>",
        ]
    )


def _box_text(lines: list[tuple[str, float, str]], height: float, style: NodeStyle) -> str:
    top = -height / 2 + PAD_Y + TOP_INSET.get(style.shape, 0.0)
    out = []
    for i, (text, size, cls) in enumerate(lines):
        colour = QUEUE_COLOUR if cls == "af-badge" and style.text != "#ffffff" else style.text
        weight = ' font-weight="600"' if cls == "af-node-id" else ""
        baseline = top + i * LINE + LINE - 4 if len(lines) > 1 else 4
        out.append(
            f'<text class="{cls}" x="0" y="{_n(baseline)}" font-size="{_n(size)}"{weight} '
            f'fill="{colour}" text-anchor="middle">{xml_escape(text)}</text>'
        )
    return "".join(out)


def _rect(rx: float) -> Callable[[float, float], str]:
    def draw(w: float, h: float) -> str:
        return (
            f'<rect x="{_n(-w / 2)}" y="{_n(-h / 2)}" width="{_n(w)}" height="{_n(h)}" '
            f'rx="{_n(min(rx, h / 2))}"/>'
        )

    return draw


def _polygon(points: list[Point]) -> str:
    return f'<polygon points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in points)}"/>'


def _hexagon(w: float, h: float) -> str:
    a, b, s = w / 2, h / 2, SLANT
    return _polygon([(-a + s, -b), (a - s, -b), (a, 0), (a - s, b), (-a + s, b), (-a, 0)])


def _trapezoid(w: float, h: float) -> str:
    a, b, s = w / 2, h / 2, SLANT
    return _polygon([(-a, -b), (a, -b), (a - s, b), (-a + s, b)])


def _parallelogram(w: float, h: float) -> str:
    a, b, s = w / 2, h / 2, SLANT
    return _polygon([(-a + s, -b), (a, -b), (a - s, b), (-a, b)])


def _cylinder(w: float, h: float) -> str:
    a, b, e = w / 2, h / 2, 6.0
    body = (
        f"M{_n(-a)},{_n(-b + e)} A{_n(a)},{_n(e)} 0 0 1 {_n(a)},{_n(-b + e)} "
        f"V{_n(b - e)} A{_n(a)},{_n(e)} 0 0 1 {_n(-a)},{_n(b - e)} Z"
    )
    rim = f"M{_n(-a)},{_n(-b + e)} A{_n(a)},{_n(e)} 0 0 0 {_n(a)},{_n(-b + e)}"
    return f'<path d="{body}"/><path d="{rim}" fill="none"/>'


def _double(w: float, h: float) -> str:
    inner = f'<rect x="{_n(-w / 2 + 3)}" y="{_n(-h / 2 + 3)}" width="{_n(w - 6)}" '
    inner += f'height="{_n(h - 6)}" rx="3" fill="none"/>'
    return _rect(5)(w, h) + inner


SHAPES: dict[str, Callable[[float, float], str]] = {
    "rect": _rect(2),
    "rounded": _rect(8),
    "stadium": _rect(999),
    "hexagon": _hexagon,
    "trapezoid": _trapezoid,
    "parallelogram": _parallelogram,
    "cylinder": _cylinder,
    "double": _double,
}
