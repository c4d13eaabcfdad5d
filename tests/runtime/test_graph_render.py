"""The workflow picture's drawing (runtime.graph_render): what is drawn, where, and its bounds."""

from __future__ import annotations

import itertools
import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from runtime.graph_render import (
    PictureLimits,
    PictureTooLarge,
    diagram_of,
    workflow_mermaid,
    workflow_svg,
)
from runtime.graph_render.layout import Layout, Placed, layout
from runtime.graph_render.svg import box_size, label_size
from runtime.spec import WorkflowSpec

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.json"))
SVG_NS = "{http://www.w3.org/2000/svg}"
Rect = tuple[float, float, float, float]


def rect(p: Placed) -> Rect:
    return (p.x - p.w / 2, p.y - p.h / 2, p.x + p.w / 2, p.y + p.h / 2)


def overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def drawn(spec: dict[str, Any], limits: PictureLimits | None = None) -> tuple[Any, Layout]:
    diagram = diagram_of(spec, limits)
    return diagram, layout(diagram, box_size, label_size, limits)


def label_rects(diagram: Any, placed: Layout) -> list[Rect]:
    found = []
    for arrow, route in zip(diagram.arrows, placed.routes, strict=True):
        if route.label is not None:
            w, h = label_size(arrow)
            found.append(rect(Placed(route.label[0], route.label[1], w, h)))
    return found


def assert_readable(spec: dict[str, Any]) -> None:
    """No two boxes overlap, no label covers a box or another label, everything is on the
    canvas, and every arrow runs from its source's border to its target's."""
    diagram, placed = drawn(spec)
    boxes = [rect(p) for p in placed.boxes.values()]
    labels = label_rects(diagram, placed)
    for a, b in itertools.combinations(boxes + labels, 2):
        assert not overlap(a, b), (a, b)
    for x0, y0, x1, y1 in boxes + labels:
        assert x0 >= 0 and x1 <= placed.width and y0 >= 0 and y1 <= placed.height
    for arrow, route in zip(diagram.arrows, placed.routes, strict=True):
        source, target = placed.boxes[arrow.source], placed.boxes[arrow.target]
        (sx, sy), (tx, ty) = route.points[0], route.points[-1]
        assert abs(sx - source.x) <= source.w / 2 + 0.01
        assert abs(sy - source.y) in (pytest.approx(source.h / 2), pytest.approx(source.h / 4))
        assert abs(tx - target.x) <= target.w / 2 + 0.01
        assert abs(ty - target.y) in (pytest.approx(target.h / 2), pytest.approx(target.h / 4))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_drawn_readably(path: Path) -> None:
    assert_readable(json.loads(path.read_text()))


def random_spec(seed: int, n: int) -> dict[str, Any]:
    rng = random.Random(seed)
    nodes = [{"id": f"node{i}", "type": rng.choice(["llm", "db", "router", "x"])} for i in range(n)]
    edges: list[dict[str, Any]] = []
    for i in range(n - 1):
        for j in rng.sample(range(i + 1, n), min(n - i - 1, rng.randint(1, 3))):
            edge: dict[str, Any] = {"from": f"node{i}", "to": f"node{j}"}
            if rng.random() < 0.4:
                edge["condition"] = "intent-" + "x" * rng.randint(1, 30)
            edges.append(edge)
    for _ in range(rng.randint(0, 3)):  # loops back, some onto the same node
        j = rng.randrange(n)
        i = rng.randrange(j + 1)
        edges.append({"from": f"node{j}", "to": f"node{i}", "loop": {"max_iterations": 2}})
    return {"name": f"random-{seed}", "start_node": "node0", "nodes": nodes, "edges": edges}


@pytest.mark.parametrize("seed", range(12))
def test_random_graphs_are_drawn_readably(seed: int) -> None:
    assert_readable(random_spec(seed, 4 + seed * 2))


def test_ranks_follow_the_edges_and_a_loop_points_back_up() -> None:
    spec = json.loads((EXAMPLES[0].parent / "draft-loop.json").read_text())
    diagram, placed = drawn(spec)
    y = {box_id: p.y for box_id, p in placed.boxes.items()}
    assert y["__start__"] < y["input"] < y["draft"] < y["critic"] < y["publish"]
    loop = next(r for a, r in zip(diagram.arrows, placed.routes, strict=True) if a.kind == "loop")
    assert loop.points[0][1] < y["critic"] and loop.points[-1][1] > y["draft"]  # upward


def test_a_pydantic_spec_and_its_json_give_the_same_picture() -> None:
    spec = json.loads((EXAMPLES[0].parent / "support-desk.json").read_text())
    model = WorkflowSpec.model_validate(spec)
    assert workflow_svg(model) == workflow_svg(spec)


def test_ends_self_loops_and_missing_nodes_are_drawn() -> None:
    spec = {
        "name": "odd",
        "start_node": "a",
        "nodes": [{"id": "a", "type": "llm"}],
        "edges": [
            {"from": "a", "to": "a", "loop": {"max_iterations": 4}},
            {"from": "a", "to": "END"},
            {"from": "a", "to": "ghost"},
        ],
    }
    root = ET.fromstring(workflow_svg(spec))
    kinds = {g.get("data-node-id"): g.get("class") for g in root.iter(f"{SVG_NS}g")}
    assert kinds["__end__"] == "af-node af-node-end"
    assert kinds["ghost"] == "af-node af-node-missing"
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert "missing: no such node" in texts
    assert "↻ loop ≤ 4" in texts
    assert_readable(spec)


def test_text_no_xml_document_can_hold_is_replaced() -> None:
    spec = {
        "name": "bad\x00\x01\ud800\ufffe",
        "start_node": "a",
        "nodes": [{"id": "a", "type": "plug\x1fin\n"}],
        "edges": [],
    }
    root = ET.fromstring(workflow_svg(spec).encode("utf-8"))  # no surrogate, no control char
    assert root.findtext(f"{SVG_NS}title") == "Workflow bad\ufffd\ufffd\ufffd\ufffd"
    assert "plug\ufffdin " in [t.text for t in root.iter(f"{SVG_NS}text")]
    assert "\ud800" not in workflow_mermaid(spec)


def test_long_labels_are_clipped_but_kept_whole_in_the_tooltip() -> None:
    condition = "c" * 300
    spec = {
        "name": "long",
        "start_node": "a",
        "nodes": [{"id": "a", "type": "router"}, {"id": "b", "type": "llm"}],
        "edges": [{"from": "a", "to": "b", "condition": condition}],
    }
    root = ET.fromstring(workflow_svg(spec))
    shown = [t.text for t in root.iter(f"{SVG_NS}text") if t.get("class") == "af-condition"]
    assert shown == ["c" * 47 + "…"]
    titles = [t.text for t in root.iter(f"{SVG_NS}title")]
    assert condition in titles


def test_more_than_the_limits_is_refused_not_drawn() -> None:
    spec = random_spec(1, 30)
    limits = PictureLimits(max_nodes=10)
    with pytest.raises(PictureTooLarge, match="at most 10 nodes"):
        workflow_svg(spec, limits)
    with pytest.raises(PictureTooLarge):
        workflow_mermaid(spec, PictureLimits(max_edges=5))


def test_past_the_bend_budget_long_arrows_are_drawn_straight() -> None:
    spec = random_spec(3, 20)
    _, routed = drawn(spec)
    assert max(len(r.points) for r in routed.routes) > 2
    _, straight = drawn(spec, PictureLimits(max_bends=0))
    assert {len(r.points) for r in straight.routes} == {2}
    ET.fromstring(workflow_svg(spec, PictureLimits(max_bends=0)))


def test_a_large_workflow_is_drawn() -> None:
    n = 1000
    spec = {
        "name": "big",
        "start_node": "n0",
        "nodes": [{"id": f"n{i}", "type": "llm"} for i in range(n)],
        "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
        + [{"from": "n0", "to": f"n{j}", "condition": f"c{j}"} for j in range(2, n, 3)],
    }
    root = ET.fromstring(workflow_svg(spec))
    assert len([g for g in root.iter(f"{SVG_NS}g") if g.get("data-node-id")]) == n + 1
