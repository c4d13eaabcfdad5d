"""The checks on the graph: edge ends, conditions, queues, cycles and reachability."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from runtime.errors import ErrorType
from runtime.graph import cycle_through, cyclic_components, reachable
from runtime.node_metadata import HOOK_TYPES
from runtime.spec import END
from runtime.validation_checks import Context
from runtime.validation_report import Report, items, known, text

BANDWIDTH_FIELDS = ("max_messages_per_second", "max_requests_per_minute", "max_tokens_per_minute")


@dataclass(frozen=True)
class RawEdge:
    index: int
    frm: str | None
    to: str | None
    condition: str | None
    condition_ok: bool
    loop: bool

    @property
    def label(self) -> str:
        return f"Edge {self.index} ({self.frm} → {self.to})"


def check_graph(ctx: Context) -> None:
    edges = [_raw_edge(i, e) for i, e in items(ctx.obj, "edges")]
    names = _NodeNames(list(ctx.node_index), ctx.report)
    _check_start(ctx, names)
    valid = [e for e in edges if _ends_exist(ctx, e, names)]
    _check_conditions(ctx, [e for e in edges if e.frm in ctx.node_index])
    _check_queues(ctx, valid, names)
    _check_cycles(ctx, valid)
    _check_orphans(ctx, valid)


def _raw_edge(i: int, entry: dict[str, Any]) -> RawEdge:
    condition = entry.get("condition")
    return RawEdge(
        index=i,
        frm=text(entry, "from"),
        to=text(entry, "to"),
        condition=condition if isinstance(condition, str) else None,
        condition_ok=condition is None or isinstance(condition, str),
        loop=entry.get("loop") is not None,
    )


class _NodeNames:
    def __init__(self, names: list[str], report: Report) -> None:
        self.names = names
        self.report = report

    def unknown(self, name: str) -> str:
        """'Known nodes: …' plus a suggestion, for a name that is not a node."""
        return f"Known nodes: {known(self.names) or 'none'}.{self.report.hint(name, self.names)}"


def _check_start(ctx: Context, names: _NodeNames) -> None:
    start = text(ctx.obj, "start_node")
    if start is not None and start not in ctx.node_index:
        msg = f"The start_node '{start}' is not a node. {names.unknown(start)}"
        ctx.report.add(ErrorType.MISSING_NODE, msg, ("start_node",))


def _ends_exist(ctx: Context, edge: RawEdge, names: _NodeNames) -> bool:
    ok = edge.frm is not None and edge.to is not None
    if edge.frm is not None and edge.frm not in ctx.node_index:
        what = (
            "END only ends edges; it cannot start one."
            if edge.frm == END
            else names.unknown(edge.frm)
        )
        msg = f"{edge.label} comes from '{edge.frm}', which is not a node. {what}"
        ctx.report.add(ErrorType.MISSING_NODE, msg, ("edges", edge.index, "from"), node_id=edge.frm)
        ok = False
    if edge.to is not None and edge.to != END and edge.to not in ctx.node_index:
        msg = f"{edge.label} goes to '{edge.to}', which is not a node. {names.unknown(edge.to)}"
        ctx.report.add(ErrorType.MISSING_NODE, msg, ("edges", edge.index, "to"))
        ok = False
    return ok


# --- conditions --------------------------------------------------------------------------------


def _check_conditions(ctx: Context, edges: list[RawEdge]) -> None:
    outgoing: dict[str, list[RawEdge]] = defaultdict(list)
    for edge in edges:
        if edge.condition_ok:
            outgoing[str(edge.frm)].append(edge)
    for node_id, out in outgoing.items():
        if any(e.condition is not None for e in out):
            _check_mix(ctx, node_id, out)
            _check_produced(ctx, node_id, out)


def _check_mix(ctx: Context, node_id: str, out: list[RawEdge]) -> None:
    unconditional = [e for e in out if e.condition is None]
    for edge in unconditional[1:]:
        msg = (
            f"Node '{node_id}' has conditional edges and {len(unconditional)} unconditional ones "
            f"({edge.label} is one). Keep at most one unconditional edge, the default route, "
            "or give "
            "each edge a condition."
        )
        ctx.report.add(ErrorType.INVALID_CONDITION, msg, ("edges", edge.index))
    seen: dict[str, int] = {}
    for edge in out:
        if edge.condition is None:
            continue
        if edge.condition in seen:
            msg = (
                f"{edge.label} repeats the condition '{edge.condition}' of edge "
                f"{seen[edge.condition]}; "
                "one intent can take only one route."
            )
            ctx.report.add(ErrorType.INVALID_CONDITION, msg, ("edges", edge.index, "condition"))
        seen.setdefault(edge.condition, edge.index)


def _check_produced(ctx: Context, node_id: str, out: list[RawEdge]) -> None:
    metadata = ctx.metadata_by_id.get(node_id)
    if not isinstance(metadata, HOOK_TYPES):
        return  # unknown type or bad metadata: already reported, intents unknown
    intents = metadata.produced_intents()
    for edge in out:
        if edge.condition is None:
            continue
        if intents is None:
            msg = (
                f"{edge.label} has the condition '{edge.condition}', but '{node_id}' is not a "
                "router, so "
                "it never sets an intent. Remove the condition, or route through a router node."
            )
            ctx.report.add(ErrorType.INVALID_CONDITION, msg, ("edges", edge.index, "condition"))
        elif edge.condition not in intents:
            msg = (
                f"{edge.label} has the condition '{edge.condition}', which router '{node_id}' "
                f"never produces. It can produce: {known(sorted(intents), 50)}."
                f"{ctx.report.hint(edge.condition, sorted(intents))}"
            )
            ctx.report.add(ErrorType.INVALID_CONDITION, msg, ("edges", edge.index, "condition"))
    if intents is not None:
        _warn_unrouted_default(ctx, node_id, out, metadata)


def _warn_unrouted_default(ctx: Context, node_id: str, out: list[RawEdge], metadata: Any) -> None:
    default = getattr(getattr(metadata, "root", metadata), "default", None)
    if default is None or any(e.condition in (None, default) for e in out):
        return
    msg = (
        f"Router '{node_id}' has no edge for its default intent '{default}' and no unconditional "
        "edge: a run routed there ends at this node. Add an edge for it if that is not intended."
    )
    index = ctx.node_index[node_id]
    ctx.report.add(
        ErrorType.INVALID_CONDITION, msg, ("nodes", index, "metadata", "default"), warning=True
    )


# --- queues ------------------------------------------------------------------------------------


def _check_queues(ctx: Context, edges: list[RawEdge], names: _NodeNames) -> None:
    existing = {(e.frm, e.to) for e in edges}
    taken: dict[tuple[str, str], str] = {}
    for i, queue in items(ctx.obj, "queues"):
        ident = text(queue, "id") or f"queues[{i}]"
        _check_bandwidth(ctx, i, ident, queue.get("bandwidth"))
        frm, to = text(queue, "from"), text(queue, "to")
        if frm is None or to is None or not _queue_ends_exist(ctx, i, ident, frm, to, names):
            continue
        if (frm, to) not in existing:
            msg = (
                f"Queue '{ident}' sits on {frm} → {to}, but no edge goes from '{frm}' to '{to}'. "
                "Add that edge, or put the queue on an existing one."
            )
            ctx.report.add(ErrorType.INVALID_QUEUE, msg, ("queues", i))
        elif (frm, to) in taken:
            msg = f"Queue '{ident}' sits on {frm} → {to}, which already has a queue."
            ctx.report.add(ErrorType.INVALID_QUEUE, msg, ("queues", i))
        else:
            taken[(frm, to)] = ident


def _queue_ends_exist(
    ctx: Context, i: int, ident: str, frm: str, to: str, names: _NodeNames
) -> bool:
    ok = True
    for key, name in (("from", frm), ("to", to)):
        if name not in ctx.node_index:
            msg = f"Queue '{ident}' {key} '{name}', which is not a node. {names.unknown(name)}"
            ctx.report.add(ErrorType.MISSING_NODE, msg, ("queues", i, key))
            ok = False
    return ok


def _check_bandwidth(ctx: Context, i: int, ident: str, bandwidth: Any) -> None:
    if not isinstance(bandwidth, dict):
        return  # missing or not an object: a schema error
    values = {k: bandwidth.get(k) for k in BANDWIDTH_FIELDS if bandwidth.get(k) is not None}
    if not values:
        msg = f"Queue '{ident}' sets no limit; give at least one of: {', '.join(BANDWIDTH_FIELDS)}."
        ctx.report.add(ErrorType.INVALID_QUEUE, msg, ("queues", i, "bandwidth"))
    for key, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and not value > 0:
            msg = f"Queue '{ident}' has {key} = {value}; a bandwidth must be a positive number."
            ctx.report.add(ErrorType.INVALID_QUEUE, msg, ("queues", i, "bandwidth", key))


# --- cycles and reachability -------------------------------------------------------------------


def _successors(edges: list[RawEdge], *, with_loops: bool) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if edge.to != END and (with_loops or not edge.loop):
            succ[str(edge.frm)].append(str(edge.to))
    return succ


def _check_cycles(ctx: Context, edges: list[RawEdge]) -> None:
    succ = _successors(edges, with_loops=False)
    closing = {(e.frm, e.to): e.index for e in reversed(edges) if not e.loop}
    for component in cyclic_components(list(ctx.node_index), succ):
        start = min(component, key=ctx.node_index.__getitem__)
        cycle = cycle_through(start, set(component), succ)
        edge_index = closing[(cycle[-2], cycle[-1])]
        msg = (
            f"Nodes {' → '.join(cycle)} form a cycle with no bound. Add "
            '"loop": {"max_iterations": N} to one of its edges (for example '
            f"edges[{edge_index}]), or remove an edge."
        )
        ctx.report.add(ErrorType.CYCLE, msg, ("edges", edge_index), node_id=start)


def _check_orphans(ctx: Context, edges: list[RawEdge]) -> None:
    start = text(ctx.obj, "start_node")
    if start is None or start not in ctx.node_index:
        return  # with no start, every node would be an orphan: the start_node error says enough
    seen = reachable(start, _successors(edges, with_loops=True))
    as_warning = ctx.obj.get("allow_orphans") is True
    for node_id, index in ctx.node_index.items():
        if node_id not in seen:
            msg = (
                f"Node '{node_id}' cannot be reached from start_node '{start}'. Add an edge to it, "
                'remove it, or set "allow_orphans": true.'
            )
            if as_warning:
                msg = (
                    f"Node '{node_id}' cannot be reached from '{start}' (allowed by allow_orphans)."
                )
            ctx.report.add(ErrorType.ORPHAN_NODE, msg, ("nodes", index), warning=as_warning)
