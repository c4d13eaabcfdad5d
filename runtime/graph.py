"""Graph questions the validator asks, iteratively: a 1,000-node chain must not recurse."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

N = TypeVar("N", bound=Hashable)


def reachable[N: Hashable](start: N, successors: Mapping[N, Sequence[N]]) -> set[N]:
    """Every node reachable from `start`, `start` included."""
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in successors.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def cyclic_components[N: Hashable](
    nodes: Iterable[N], successors: Mapping[N, Sequence[N]]
) -> list[list[N]]:
    """Strongly connected components that contain a cycle (Tarjan's algorithm, iteratively)."""
    index: dict[N, int] = {}
    low: dict[N, int] = {}
    on_stack: set[N] = set()
    stack: list[N] = []
    found: list[list[N]] = []
    for root in nodes:
        if root not in index:
            _tarjan_from(root, successors, index, low, on_stack, stack, found)
    return [c for c in found if len(c) > 1 or c[0] in successors.get(c[0], ())]


def _tarjan_from[N: Hashable](
    root: N,
    successors: Mapping[N, Sequence[N]],
    index: dict[N, int],
    low: dict[N, int],
    on_stack: set[N],
    stack: list[N],
    found: list[list[N]],
) -> None:
    work: list[tuple[N, int]] = [(root, 0)]
    while work:
        node, child_i = work.pop()
        if child_i == 0:
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
        children = successors.get(node, ())
        for i in range(child_i, len(children)):
            child = children[i]
            if child not in index:
                work.append((node, i + 1))
                work.append((child, 0))
                break
            if child in on_stack:
                low[node] = min(low[node], index[child])
        else:
            _close(node, work, index, low, on_stack, stack, found)


def _close[N: Hashable](
    node: N,
    work: list[tuple[N, int]],
    index: dict[N, int],
    low: dict[N, int],
    on_stack: set[N],
    stack: list[N],
    found: list[list[N]],
) -> None:
    if work:
        caller = work[-1][0]
        low[caller] = min(low[caller], low[node])
    if low[node] != index[node]:
        return
    component: list[N] = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
            break
    found.append(component)


def cycle_through[N: Hashable](
    start: N, members: set[N], successors: Mapping[N, Sequence[N]]
) -> list[N]:
    """One cycle start → … → start inside a strongly connected component (shortest, by BFS)."""
    came_from: dict[N, N] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in successors.get(node, ()):
            if nxt == start:
                return [*_path_back(node, start, came_from), start]
            if nxt in members and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return [start, start]


def _path_back[N: Hashable](node: N, start: N, came_from: Mapping[N, N]) -> list[N]:
    path = [node]
    while path[-1] != start:
        path.append(came_from[path[-1]])
    path.reverse()
    return path
