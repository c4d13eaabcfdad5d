"""Small inline SVG charts for the health dashboard: drawn on the server, no script, no CDN."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 560, 170
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 24, 34
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")


@dataclass(frozen=True)
class Line:
    name: str
    values: Sequence[float | None]


def number(value: float | None, unit: str = "") -> str:
    """A value as a person reads it: "1.25 req/s", "340 ms", "-" for nothing."""
    if value is None:
        return "-"
    if value == int(value) and abs(value) >= 1:
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".strip()


def line_chart(title: str, labels: Sequence[str], lines: Sequence[Line], unit: str) -> SafeString:
    """One chart of a few lines over time (a gap where a value is None), each line's newest
    value in its legend; `labels` name the x axis's points (times)."""
    found = [v for line in lines for v in line.values if v is not None]
    top = _nice(max(found, default=0.0))
    parts = [_frame(title, top, unit, labels)]
    for colour, line in zip(COLOURS, lines, strict=False):
        parts.append(_path(line.values, top, colour, line.name))
    parts.append(_legend(lines, unit))
    return _svg(title, "af-line-chart", parts)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], unit: str) -> SafeString:
    """Horizontal bars, one per (label, value), each labelled with its value."""
    height = max(60, 26 * len(bars) + 20)
    top = max((value for _, value in bars), default=0.0) or 1.0
    span = WIDTH - 140 - 90
    parts = [format_html('<text class="af-title" x="4" y="12">{}</text>', title)]
    for i, (label, value) in enumerate(bars):
        y = 22 + 26 * i
        parts.append(
            format_html(
                '<g class="af-bar" data-label="{}" data-value="{}">'
                '<text x="136" y="{}" text-anchor="end" class="af-bar-label">{}</text>'
                '<rect x="140" y="{}" width="{}" height="18" fill="{}"/>'
                '<text x="{}" y="{}" class="af-value">{}</text></g>',
                label,
                value,
                y + 13,
                label[:22],
                y,
                max(1.0, round(span * value / top, 1)),
                COLOURS[i % len(COLOURS)],
                round(144 + span * value / top, 1),
                y + 13,
                number(value, unit),
            )
        )
    if not bars:
        parts.append(mark_safe('<text x="140" y="40" class="af-empty">nothing yet</text>'))
    return _svg(title, "af-bar-chart", parts, height)


def _svg(title: str, kind: str, parts: Sequence[str], height: int = HEIGHT) -> SafeString:
    return format_html(
        '<svg class="af-chart {}" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="{}">{}</svg>',
        kind,
        WIDTH,
        height,
        WIDTH,
        height,
        title,
        mark_safe("".join(parts)),  # each part is built with format_html
    )


def _nice(value: float) -> float:
    """The axis's top: 1, 2 or 5 times a power of ten, at or above `value`."""
    if value <= 0:
        return 1.0
    scale = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while scale > value:
        scale /= 10
    return next(step * scale for step in (1, 2, 5, 10) if step * scale >= value)


def _x(i: int, count: int) -> float:
    return round(LEFT + (WIDTH - LEFT - RIGHT) * i / max(1, count - 1), 1)


def _y(value: float, top: float) -> float:
    return round(HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * value / top, 1)


def _frame(title: str, top: float, unit: str, labels: Sequence[str]) -> str:
    base, mid = HEIGHT - BOTTOM, _y(top / 2, top)
    ticks = [0, len(labels) // 2, len(labels) - 1] if labels else []
    return format_html(
        '<text class="af-title" x="{}" y="12">{}</text>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="af-axis"/>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="af-grid"/>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="af-grid"/>'
        '<text x="{}" y="{}" text-anchor="end" class="af-tick">{}</text>'
        '<text x="{}" y="{}" text-anchor="end" class="af-tick">0</text>{}',
        LEFT,
        title,
        LEFT,
        base,
        WIDTH - RIGHT,
        base,
        LEFT,
        TOP,
        WIDTH - RIGHT,
        TOP,
        LEFT,
        mid,
        WIDTH - RIGHT,
        mid,
        LEFT - 4,
        TOP + 4,
        number(top, unit),
        LEFT - 4,
        base,
        mark_safe(
            "".join(
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle" class="af-tick">{}</text>',
                    _x(i, len(labels)),
                    base + 13,
                    labels[i],
                )
                for i in ticks
            )
        ),
    )


def _path(values: Sequence[float | None], top: float, colour: str, name: str) -> str:
    """The line through the values, broken where one is None; a dot on a lone point."""
    runs: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((_x(i, len(values)), _y(min(value, top), top)))
    drawn = []
    for run in runs:
        if len(run) == 1:
            drawn.append(format_html('<circle cx="{}" cy="{}" r="2.5"/>', *run[0]))
        elif run:
            points = " ".join(f"{x},{y}" for x, y in run)
            drawn.append(format_html('<polyline points="{}" fill="none"/>', points))
    return format_html(
        '<g class="af-series" data-series="{}" stroke="{}" fill="{}" stroke-width="1.8">{}</g>',
        name,
        colour,
        colour,
        mark_safe("".join(drawn)),
    )


def _legend(lines: Sequence[Line], unit: str) -> str:
    items = []
    x = LEFT
    for colour, line in zip(COLOURS, lines, strict=False):
        newest = next((v for v in reversed(line.values) if v is not None), None)
        text = f"{line.name} {number(newest, unit)}"
        items.append(
            format_html(
                '<rect x="{}" y="{}" width="9" height="9" fill="{}"/>'
                '<text x="{}" y="{}" class="af-legend" data-series="{}">{}</text>',
                x,
                HEIGHT - 12,
                colour,
                x + 12,
                HEIGHT - 4,
                line.name,
                text,
            )
        )
        x += 14 + 7 * len(text)
    return mark_safe("".join(items))
