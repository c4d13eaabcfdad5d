"""A spec as a drawing sees it: boxes (nodes, plus a start and an end) and arrows with labels.

Built tolerantly from the spec's JSON, so a spec with errors still has a picture: an edge naming
a node that does not exist points at a "missing" box. The work is bounded by `PictureLimits`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

START = "__start__"
"""The start marker's box id (a node id starts with a letter, so none can take it)."""
END = "__end__"
"""The box edges to `"END"` point at."""

BoxKind = Literal["node", "start", "end", "missing"]
ArrowKind = Literal["always", "condition", "default", "loop", "start"]
LabelKind = Literal["condition", "default", "loop", "queue", "rate"]
BANDWIDTH_UNITS = {
    "max_messages_per_second": "msg/s",
    "max_requests_per_minute": "req/min",
    "max_tokens_per_minute": "tok/min",
}


class PictureTooLarge(ValueError):
    """The spec has more nodes or edges than a picture is drawn for."""


@dataclass(frozen=True)
class PictureLimits:
    """How much one picture may cost, whatever the spec holds."""

    max_nodes: int = 2000
    """Boxes drawn (nodes and missing nodes); more raises PictureTooLarge."""
    max_edges: int = 5000
    """Arrows drawn; more raises PictureTooLarge."""
    max_bends: int = 20_000
    """Bend points routing arrows around boxes; past it, long arrows are drawn straight."""


@dataclass(frozen=True)
class Box:
    id: str
    type: str
    kind: BoxKind = "node"
    is_start: bool = False
    badges: tuple[str, ...] = ()
    """Queues whose edges lead into this node."""


@dataclass(frozen=True)
class Label:
    text: str
    kind: LabelKind


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    kind: ArrowKind
    labels: tuple[Label, ...] = ()


@dataclass(frozen=True)
class Diagram:
    name: str
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]


def diagram_of(spec: Mapping[str, Any] | BaseModel, limits: PictureLimits | None = None) -> Diagram:
    """The boxes and arrows of a spec (a WorkflowSpec or its JSON, valid or not).

    Raises:
        PictureTooLarge: more nodes or edges than `limits` allow.
    """
    data = spec.model_dump(by_alias=True) if isinstance(spec, BaseModel) else spec
    bounds = limits or PictureLimits()
    nodes = _dicts(data.get("nodes"))
    edges = _dicts(data.get("edges"))
    _check_size(len(nodes), len(edges), bounds)
    start = data.get("start_node")
    queues = _queues_by_edge(_dicts(data.get("queues")))
    boxes = _boxes(nodes, start if isinstance(start, str) else None, queues)
    arrows = _arrows(edges, queues)
    if isinstance(start, str):
        arrows.insert(0, Arrow(START, start, "start"))
    _add_missing(boxes, arrows)
    _check_size(len(boxes) - 2, len(arrows) - 1, bounds)  # start and end are free
    return Diagram(_text(data.get("name")), tuple(boxes.values()), tuple(arrows))


def _check_size(nodes: int, edges: int, limits: PictureLimits) -> None:
    if nodes > limits.max_nodes or edges > limits.max_edges:
        raise PictureTooLarge(
            f"The workflow has {nodes:,} nodes and {edges:,} edges; a picture is drawn for at "
            f"most {limits.max_nodes:,} nodes and {limits.max_edges:,} edges."
        )


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _boxes(
    nodes: list[Mapping[str, Any]],
    start: str | None,
    queues: Mapping[tuple[str, str], list[Mapping[str, Any]]],
) -> dict[str, Box]:
    badges: dict[str, list[str]] = {}
    for (_, target), found in queues.items():
        badges.setdefault(target, []).extend(f"queue {_text(q.get('id')) or '?'}" for q in found)
    boxes = {START: Box(START, "start", "start")}
    for node in nodes:
        node_id = node.get("id")
        if isinstance(node_id, str) and node_id not in boxes:
            kind = _text(node.get("type")) or "?"
            marks = tuple(badges.get(node_id, ()))
            boxes[node_id] = Box(node_id, kind, is_start=node_id == start, badges=marks)
    return boxes


def _queues_by_edge(
    queues: list[Mapping[str, Any]],
) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    found: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for queue in queues:
        ends = (queue.get("from"), queue.get("to"))
        if isinstance(ends[0], str) and isinstance(ends[1], str):
            found.setdefault((ends[0], ends[1]), []).append(queue)
    return found


def _queue_labels(queue: Mapping[str, Any]) -> list[Label]:
    bandwidth = queue.get("bandwidth")
    rates = []
    if isinstance(bandwidth, Mapping):
        for key, unit in BANDWIDTH_UNITS.items():
            value = bandwidth.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                rates.append(f"{value:,g} {unit}")
    labels = [Label(f"queue {_text(queue.get('id')) or '?'}", "queue")]
    return labels + ([Label(" · ".join(rates), "rate")] if rates else [])


def _arrows(
    edges: list[Mapping[str, Any]], queues: Mapping[tuple[str, str], list[Mapping[str, Any]]]
) -> list[Arrow]:
    conditional = {e.get("from") for e in edges if e.get("condition") is not None}
    arrows = []
    for edge in edges:
        source, target = edge.get("from"), edge.get("to")
        if not isinstance(source, str) or not isinstance(target, str):
            continue
        target = END if target == "END" else target
        arrows.append(_arrow(edge, source, target, source in conditional, queues))
    return arrows


def _arrow(
    edge: Mapping[str, Any],
    source: str,
    target: str,
    among_conditions: bool,
    queues: Mapping[tuple[str, str], list[Mapping[str, Any]]],
) -> Arrow:
    condition, loop = edge.get("condition"), edge.get("loop")
    labels: list[Label] = []
    kind: ArrowKind = "always"
    if condition is not None:
        labels.append(Label(str(condition), "condition"))
        kind = "condition"
    elif among_conditions:
        labels.append(Label("default", "default"))
        kind = "default"
    if isinstance(loop, Mapping):
        labels.append(Label(f"↻ loop ≤ {loop.get('max_iterations')}", "loop"))
        kind = "loop"
    for queue in queues.get((source, "END" if target == END else target), ()):
        labels += _queue_labels(queue)
    return Arrow(source, target, kind, tuple(labels))


def _add_missing(boxes: dict[str, Box], arrows: list[Arrow]) -> None:
    for arrow in arrows:
        for end in (arrow.source, arrow.target):
            if end == END and END not in boxes:
                boxes[END] = Box(END, "end", "end")
            elif end not in boxes:
                boxes[end] = Box(end, "missing", "missing")
