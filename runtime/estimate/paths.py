"""The most and the least a run can cost: dynamic programming over the workflow's graph.

A node's outgoing edges either all run (fan-out) or offer a choice: a router takes one
conditional edge, or the default (or ends the run when an intent it can produce has no edge).
A node runs once per pass however many branches lead to it (fan-in), so a result is the *set*
of nodes that run, as a bitset, and a fan-out's cost is that of the union of its branches' sets.
Loop edges are taken out of the graph; for the most expensive run, each loop edge with
`max_iterations` N adds N passes over its body (the nodes from its target back to its source)
to its source's cost. The cheapest run takes no loop edge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Weight = tuple[float, int, int]
"""(USD, prompt tokens, completion tokens)."""
ZERO: Weight = (0.0, 0, 0)


@dataclass(frozen=True)
class Loop:
    source: str
    target: str
    max_iterations: int


@dataclass(frozen=True)
class Graph:
    start: str
    branches: Mapping[str, Sequence[tuple[str, ...]]]
    """Per node, what may run after it: one tuple per alternative, each running all its
    nodes (a fan-out is one alternative; a router has one per route; `()` ends the run)."""
    loops: Sequence[Loop] = ()


@dataclass(frozen=True)
class Run:
    nodes: list[str]
    """The nodes that run, each once, in an order the graph allows."""
    weight: Weight
    loop_passes: dict[str, int] = field(default_factory=dict)
    """Extra passes per loop edge (`"critic->draft"`), on the most expensive run."""


def _add(a: Weight, b: Weight) -> Weight:
    return (round(a[0] + b[0], 8), a[1] + b[1], a[2] + b[2])


def _scaled(a: Weight, times: int) -> Weight:
    return (round(a[0] * times, 8), a[1] * times, a[2] * times)


def _rank(weight: Weight) -> tuple[float, int]:
    """Runs compare by cost, then by tokens (a model missing from the price table costs 0)."""
    return weight[0], weight[1] + weight[2]


def _targets(alternatives: Sequence[tuple[str, ...]]) -> list[str]:
    """Each node the alternatives lead to, once, in the order the spec lists them."""
    return list(dict.fromkeys(t for branch in alternatives for t in branch))


def _topological(graph: Graph) -> list[str]:
    """Every node in an order where each comes after the nodes that lead to it."""
    waiting = dict.fromkeys(graph.branches, 0)
    for alternatives in graph.branches.values():
        for target in _targets(alternatives):
            waiting[target] += 1
    ready = deque(node for node, count in waiting.items() if count == 0)
    order = []
    while ready:
        node = ready.popleft()
        order.append(node)
        for target in _targets(graph.branches[node]):
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return order


class _Planner:
    """One pass of the DP: each node's best set (bitset) and weight, given node weights."""

    def __init__(self, graph: Graph, order: list[str], weights: Mapping[str, Weight]) -> None:
        self.graph, self.order, self.weights = graph, order, weights
        self.bit = {node: 1 << index for index, node in enumerate(order)}
        self.best: dict[str, tuple[int, Weight]] = {}

    def weight_of(self, mask: int) -> Weight:
        total = ZERO
        while mask:  # one step per node in the set, not per node in the graph
            low = mask & -mask
            total = _add(total, self.weights.get(self.order[low.bit_length() - 1], ZERO))
            mask ^= low
        return total

    def branch(self, targets: tuple[str, ...]) -> tuple[int, Weight]:
        mask, total = 0, ZERO
        for target in targets:
            if target not in self.best:  # not reachable without a loop edge: never runs
                continue
            their_mask, their_weight = self.best[target]
            extra = their_mask & ~mask
            total = _add(total, their_weight if extra == their_mask else self.weight_of(extra))
            mask |= their_mask
        return mask, total

    def plan(self, pick: Callable[[Sequence[Weight]], int], nodes: Sequence[str]) -> None:
        for node in reversed(nodes):
            options = [self.branch(targets) for targets in self.graph.branches[node]] or [(0, ZERO)]
            mask, weight = options[pick([weight for _, weight in options])]
            self.best[node] = (mask | self.bit[node], _add(weight, self.weights.get(node, ZERO)))

    def run_from(self, start: str) -> list[str]:
        """The nodes that run from `start`, following each node's chosen alternative."""
        mask = self.best[start][0]
        return [node for node in self.order if mask & self.bit[node]]


def _most(weights: Sequence[Weight]) -> int:
    return max(range(len(weights)), key=lambda i: _rank(weights[i]))


def _least(weights: Sequence[Weight]) -> int:
    return min(range(len(weights)), key=lambda i: _rank(weights[i]))


def _region(graph: Graph, loop: Loop) -> set[str]:
    """The loop's body: the nodes on some way from its target to its source."""
    ahead = _reach(loop.target, lambda n: set(_targets(graph.branches[n])))
    behind_of: dict[str, set[str]] = {n: set() for n in graph.branches}
    for node, alternatives in graph.branches.items():
        for target in _targets(alternatives):
            behind_of[target].add(node)
    behind = _reach(loop.source, lambda n: behind_of[n])
    return ahead & behind


def _reach(start: str, neighbours: Callable[[str], set[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for other in neighbours(todo.pop()) - seen:
            seen.add(other)
            todo.append(other)
    return seen


def _body_weight(
    graph: Graph, order: list[str], weights: Mapping[str, Weight], loop: Loop
) -> Weight:
    """The most one pass over the loop's body costs (only the body's own nodes)."""
    region = _region(graph, loop)
    inside = {
        node: [kept for b in graph.branches[node] if (kept := tuple(t for t in b if t in region))]
        if node != loop.source
        else [()]
        for node in region
    }
    sub = Graph(loop.target, inside)
    planner = _Planner(sub, [n for n in order if n in region], weights)
    planner.plan(_most, planner.order)
    return planner.best[loop.target][1] if loop.target in planner.best else ZERO


def most_expensive(graph: Graph, weights: Mapping[str, Weight]) -> Run:
    """The run that costs most: the dearest route at each choice, every loop at its bound."""
    order = _topological(graph)
    boosted = dict(weights)
    extra: dict[str, list[tuple[Loop, Weight]]] = {}
    # Inner loops first: an outer loop's body then counts its inner loops' passes.
    for loop in sorted(graph.loops, key=lambda lp: len(_region(graph, lp))):
        body = _body_weight(graph, order, boosted, loop)
        boosted[loop.source] = _add(
            boosted.get(loop.source, ZERO), _scaled(body, loop.max_iterations)
        )
        extra.setdefault(loop.source, []).append((loop, body))
    planner = _Planner(graph, order, boosted)
    planner.plan(_most, order)
    nodes = planner.run_from(graph.start)
    passes = {
        f"{loop.source}->{loop.target}": loop.max_iterations
        for node in nodes
        for loop, _ in extra.get(node, [])
    }
    return Run(nodes, planner.best[graph.start][1], passes)


def cheapest(graph: Graph, weights: Mapping[str, Weight]) -> Run:
    """The run that costs least: the cheapest route at each choice, no loop taken."""
    order = _topological(graph)
    planner = _Planner(graph, order, weights)
    planner.plan(_least, order)
    return Run(planner.run_from(graph.start), planner.best[graph.start][1])
