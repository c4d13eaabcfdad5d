"""A layered (Sugiyama-style) layout, top to bottom, small and iterative.

Steps: turn back edges (loops) around so the graph is acyclic; rank boxes by longest path, at
even ranks only, so every arrow crosses at least one odd rank where its label gets a place of
its own; route long arrows through bend points, one per rank crossed; order each rank to cut
crossings (barycenters, keeping the best order seen); place boxes left to right near their
neighbours. Every step is linear or n·log n in boxes + arrows + bends, and bends are capped.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runtime.graph_render.diagram import Arrow, Box, Diagram, PictureLimits

Point = tuple[float, float]
Size = tuple[float, float]

H_GAP = 28.0
"""Horizontal space between neighbours in a rank."""
V_GAP = 22.0
"""Vertical space between ranks."""
LOOP_REACH = 34.0
"""How far a self-loop reaches right of its box."""
SWEEPS = 8
PLACE_PASSES = 6
MARGIN = 16.0


@dataclass(frozen=True)
class Placed:
    """A box's centre and size."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Route:
    """An arrow's path from its source's border to its target's, and its label's centre."""

    points: tuple[Point, ...]
    label: Point | None
    self_loop: bool = False


@dataclass(frozen=True)
class Layout:
    boxes: dict[str, Placed]
    routes: tuple[Route, ...]
    """One per diagram arrow, in the same order."""
    width: float
    height: float


@dataclass
class _Item:
    """A box or a bend point in one rank."""

    w: float
    h: float
    rank: int
    box: str | None = None
    pad: float = 0.0
    """Room kept free on each side (for a self-loop and its label)."""
    x: float = 0.0
    y: float = 0.0
    up: list[int] = field(default_factory=list)
    down: list[int] = field(default_factory=list)

    @property
    def half(self) -> float:
        return self.w / 2 + self.pad


@dataclass(frozen=True)
class _Chain:
    items: tuple[int, ...]
    """From the upper end to the lower end."""
    reversed: bool
    label: int | None
    """The item holding the label, or None (no label, or drawn straight)."""


def layout(
    diagram: Diagram,
    box_size: Callable[[Box], Size],
    label_size: Callable[[Arrow], Size],
    limits: PictureLimits | None = None,
) -> Layout:
    """Place every box and route every arrow of `diagram`."""
    bounds = limits or PictureLimits()
    ids = [box.id for box in diagram.boxes]
    index = {box_id: i for i, box_id in enumerate(ids)}
    ends = [(index[a.source], index[a.target]) for a in diagram.arrows]
    sizes = [label_size(a) if a.labels else (0.0, 0.0) for a in diagram.arrows]
    pads = _self_loop_room(ends, sizes)
    items = [_box_item(box, box_size(box), pads.get(i, 0.0)) for i, box in enumerate(diagram.boxes)]
    back = _back_edges(len(ids), ends)
    ranks = _ranks(len(ids), [(v, u) if k in back else (u, v) for k, (u, v) in enumerate(ends)])
    for i, rank in enumerate(ranks):
        items[i].rank = 2 * rank
    chains = _chains(items, ends, back, sizes, bounds.max_bends)
    layers = _layers(items)
    _order(layers, items)
    _place_y(layers, items)
    _place_x(layers, items)
    return _finish(diagram, items, chains, sizes)


def _box_item(box: Box, size: Size, pad: float) -> _Item:
    return _Item(size[0], size[1], 0, box.id, pad)


def _self_loop_room(ends: list[tuple[int, int]], sizes: list[Size]) -> dict[int, float]:
    """Room each box needs on its sides for its self-loop and the loop's label."""
    room: dict[int, float] = {}
    for (u, v), size in zip(ends, sizes, strict=True):
        if u == v:
            room[u] = max(room.get(u, 0.0), LOOP_REACH + size[0] + 8)
    return room


def _back_edges(n: int, ends: Sequence[tuple[int, int]]) -> set[int]:
    """Arrows closing a cycle, found by depth-first search from box 0 (the start), then from
    any box not reached; self-loops are left out of ranking altogether."""
    succ: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for k, (u, v) in enumerate(ends):
        if u != v:
            succ[u].append((v, k))
    state = [0] * n  # 0 unseen, 1 on the path, 2 done
    back = {k for k, (u, v) in enumerate(ends) if u == v}
    for root in range(n):
        if state[root] == 0:
            _dfs(root, succ, state, back)
    return back


def _dfs(root: int, succ: list[list[tuple[int, int]]], state: list[int], back: set[int]) -> None:
    state[root] = 1
    stack = [(root, 0)]
    while stack:
        node, i = stack.pop()
        if i < len(succ[node]):
            stack.append((node, i + 1))
            nxt, k = succ[node][i]
            if state[nxt] == 1:
                back.add(k)
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, 0))
        else:
            state[node] = 2


def _ranks(n: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Longest-path ranks of an acyclic graph (Kahn's order); self-loops are ignored."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    for u, v in edges:
        if u != v:
            succ[u].append(v)
            indegree[v] += 1
    rank = [0] * n
    ready = deque(i for i in range(n) if indegree[i] == 0)
    while ready:
        u = ready.popleft()
        for v in succ[u]:
            rank[v] = max(rank[v], rank[u] + 1)
            indegree[v] -= 1
            if indegree[v] == 0:
                ready.append(v)
    return rank


def _chains(
    items: list[_Item],
    ends: list[tuple[int, int]],
    back: set[int],
    labels: list[Size],
    max_bends: int,
) -> list[_Chain | None]:
    """Each arrow's items from upper to lower end (None for a self-loop); bend points are added
    to `items` unless there would be more than `max_bends` of them."""
    spans = [abs(items[v].rank - items[u].rank) for u, v in ends if u != v]
    bend = sum(span - 1 for span in spans) <= max_bends
    chains: list[_Chain | None] = []
    for k, (u, v) in enumerate(ends):
        if u == v:
            chains.append(None)
            continue
        top, bottom = (v, u) if k in back else (u, v)
        chains.append(_chain(items, top, bottom, k in back, labels[k], bend))
    return chains


def _chain(items: list[_Item], top: int, bottom: int, rev: bool, label: Size, bend: bool) -> _Chain:
    path = [top]
    label_at: int | None = None
    if bend:
        first, last = items[top].rank + 1, items[bottom].rank
        # beside the edge's source (odd ranks hold only bends and labels): a router's
        # conditions read together, just below it
        at = last - 1 if rev else first
        for rank in range(first, last):
            size = label if rank == at else (0.0, 0.0)
            items.append(_Item(size[0], size[1], rank))
            path.append(len(items) - 1)
            if rank == at and label != (0.0, 0.0):
                label_at = len(items) - 1
    path.append(bottom)
    for a, b in itertools.pairwise(path):
        if items[b].rank == items[a].rank + 1:
            items[a].down.append(b)
            items[b].up.append(a)
    return _Chain(tuple(path), rev, label_at)


def _layers(items: list[_Item]) -> list[list[int]]:
    depth = max((item.rank for item in items), default=0) + 1
    layers: list[list[int]] = [[] for _ in range(depth)]
    for i, item in enumerate(items):
        layers[item.rank].append(i)
    return layers


def _order(layers: list[list[int]], items: list[_Item]) -> None:
    """Reorder each rank by its neighbours' mean position, sweeping down then up, and keep
    the order with the fewest crossings."""
    best = [list(layer) for layer in layers]
    fewest = _crossings(layers, items)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        for r in range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1):
            _reorder(layers[r], layers[r - 1 if downward else r + 1], items, downward)
        count = _crossings(layers, items)
        if count < fewest:
            best, fewest = [list(layer) for layer in layers], count
        if fewest == 0:
            break
    layers[:] = best


def _reorder(layer: list[int], fixed: list[int], items: list[_Item], downward: bool) -> None:
    if not layer or not fixed:
        return
    position = {item: i for i, item in enumerate(fixed)}

    def centre(i: int) -> float:
        near = items[i].up if downward else items[i].down
        return sum(position[n] for n in near) / len(near) if near else -1.0

    current = {item: i for i, item in enumerate(layer)}
    scale = len(fixed) / len(layer)
    # an item with no neighbour there keeps its relative place
    keys = {i: (c if (c := centre(i)) >= 0 else current[i] * scale) for i in layer}
    layer.sort(key=lambda i: (keys[i], current[i]))


def _crossings(layers: list[list[int]], items: list[_Item]) -> int:
    total = 0
    for upper, lower in itertools.pairwise(layers):
        position = {item: i for i, item in enumerate(lower)}
        pairs = sorted((i, position[d]) for i, item in enumerate(upper) for d in items[item].down)
        total += _inversions([b for _, b in pairs], len(lower))
    return total


def _inversions(values: list[int], size: int) -> int:
    """Pairs i < j with values[i] > values[j] (a Fenwick tree: n·log n)."""
    tree = [0] * (size + 1)
    count = 0
    for seen, value in enumerate(values):
        i, below = value + 1, 0
        while i > 0:
            below += tree[i]
            i -= i & -i
        count += seen - below
        i = value + 1
        while i <= size:
            tree[i] += 1
            i += i & -i
    return count


def _place_y(layers: list[list[int]], items: list[_Item]) -> None:
    y = 0.0
    previous = 0.0
    for r, layer in enumerate(layers):
        height = max((items[i].h for i in layer), default=0.0)
        y += (previous + height) / 2 + (V_GAP if r else 0.0)
        for i in layer:
            items[i].y = y
        previous = height


def _place_x(layers: list[list[int]], items: list[_Item]) -> None:
    for layer in layers:
        _pack(layer, items, [0.0] * len(layer))
    for p in range(PLACE_PASSES):
        downward = p % 2 == 0
        for r in range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1):
            layer = layers[r]
            wanted = [_neighbours_mean(items[i], items, downward) for i in layer]
            _pack(layer, items, wanted)


def _neighbours_mean(item: _Item, items: list[_Item], downward: bool) -> float:
    near = item.up if downward else item.down
    return sum(items[n].x for n in near) / len(near) if near else item.x


def _pack(layer: list[int], items: list[_Item], wanted: list[float]) -> None:
    """Put each item as near its wanted x as the order and the gaps allow: the mean of the
    placement pushed from the left and the one pushed from the right (both keep the gaps)."""
    if not layer:
        return
    left = list(wanted)
    for k in range(1, len(layer)):
        left[k] = max(left[k], left[k - 1] + _gap(items[layer[k - 1]], items[layer[k]]))
    right = list(wanted)
    for k in range(len(layer) - 2, -1, -1):
        right[k] = min(right[k], right[k + 1] - _gap(items[layer[k]], items[layer[k + 1]]))
    for k, i in enumerate(layer):
        items[i].x = (left[k] + right[k]) / 2


def _gap(a: _Item, b: _Item) -> float:
    bare = a.box is None and b.box is None and not (a.w or b.w)
    return a.half + b.half + (H_GAP / 2 if bare else H_GAP)


def _finish(
    diagram: Diagram, items: list[_Item], chains: list[_Chain | None], sizes: list[Size]
) -> Layout:
    left = min(item.x - item.half for item in items) - MARGIN
    top = min(item.y - item.h / 2 for item in items) - MARGIN
    for item in items:
        item.x, item.y = item.x - left, item.y - top
    width = max(item.x + item.half for item in items) + MARGIN
    height = max(item.y + item.h / 2 for item in items) + MARGIN
    placed = {i.box: Placed(i.x, i.y, i.w, i.h) for i in items if i.box is not None}
    ports = _ports(chains, items)
    routes = []
    for k, (arrow, chain) in enumerate(zip(diagram.arrows, chains, strict=True)):
        if chain is None:
            routes.append(_self_loop(placed[arrow.source], sizes[k]))
        else:
            routes.append(_route(chain, items, ports[k], sizes[k] != (0.0, 0.0)))
    return Layout(placed, tuple(routes), width, height)


def _ports(chains: list[_Chain | None], items: list[_Item]) -> list[tuple[float, float]]:
    """Where each arrow leaves its upper box and enters its lower one, as offsets from the
    boxes' centres: spread along the border in the order of where the arrows go."""
    leaving: dict[int, list[tuple[float, int]]] = {}
    entering: dict[int, list[tuple[float, int]]] = {}
    for k, chain in enumerate(chains):
        if chain is not None:
            top, bottom = chain.items[0], chain.items[-1]
            leaving.setdefault(top, []).append((items[chain.items[1]].x, k))
            entering.setdefault(bottom, []).append((items[chain.items[-2]].x, k))
    offsets = [[0.0, 0.0] for _ in chains]
    for side, groups in enumerate((leaving, entering)):
        for owner, arrows in groups.items():
            step = min(14.0, items[owner].w / 2 / max(len(arrows), 1))
            for rank, (_, k) in enumerate(sorted(arrows)):
                offsets[k][side] = (rank - (len(arrows) - 1) / 2) * step
    return [(a, b) for a, b in offsets]


def _route(chain: _Chain, items: list[_Item], port: tuple[float, float], labelled: bool) -> Route:
    top, bottom = items[chain.items[0]], items[chain.items[-1]]
    points = [(top.x + port[0], top.y + top.h / 2)]
    points += [(items[i].x, items[i].y) for i in chain.items[1:-1]]
    points.append((bottom.x + port[1], bottom.y - bottom.h / 2))
    label: Point | None = None
    if chain.label is not None:
        label = (items[chain.label].x, items[chain.label].y)
    elif labelled:
        label = ((points[0][0] + points[-1][0]) / 2, (points[0][1] + points[-1][1]) / 2)
    if chain.reversed:
        points.reverse()
    return Route(tuple(points), label)


def _self_loop(box: Placed, label: Size) -> Route:
    right = box.x + box.w / 2
    points = ((right, box.y - box.h / 4), (right, box.y + box.h / 4))
    centre = (right + LOOP_REACH + label[0] / 2 + 4, box.y) if label != (0.0, 0.0) else None
    return Route(points, centre, self_loop=True)
