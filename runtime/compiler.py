"""A validated WorkflowSpec becomes a compiled LangGraph graph (SPEC §1 execution rules).

- Conditional edges route on the state's `intent`; unconditional fan-out runs in parallel.
- A node with several incoming edges is *deferred*: it runs once, after every branch that was
  actually taken has finished, also when branches differ in length.
- An edge with `loop.max_iterations` goes through a gate that counts its traversals; one pass
  more fails the run with `loop_limit`.
- An edge with a queue goes through a gate that takes one message and one request from the
  queue's buckets (waiting for a slot, or failing the target with `rate_limited`); an LLM node
  behind a queue also reserves its tokens there (`runtime.ratelimit`).
- Compiled graphs are cached in the process by the spec's hash (they do not pickle).
"""

import hashlib
import json
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from runtime.context import RunContext
from runtime.errors import LoopLimitExceeded, RateLimited, SpecValidationError
from runtime.events import NodeFinished, NodeStarted
from runtime.execute import execute_node
from runtime.node_metadata import NodeMetadata
from runtime.nodes import NODE_TYPES, Node
from runtime.nodes.aggregator import _Aggregator
from runtime.nodes.llm import LLMNode
from runtime.plugins import registry as plugins
from runtime.ratelimit import QueueLimits, take
from runtime.spec import END as SPEC_END
from runtime.spec import Edge, SourceSpec, WorkflowSpec
from runtime.state import LOOPS_KEY, state_schema
from runtime.validation import ValidationResult
from runtime.validation_workflows import SubWorkflow, source_kinds

CACHE_SIZE = 256
NodeRegistry = Mapping[str, type[Node] | Mapping[str, type[Node]]]


@dataclass(frozen=True)
class CompiledWorkflow:
    graph: CompiledStateGraph[Any, Any, Any, Any]
    spec: WorkflowSpec
    digest: str
    """sha256 of the spec and the sources it uses: the cache key, and what a run records."""
    node_types: Mapping[str, str]
    max_steps: int
    timeout_seconds: float | None
    source_kinds: frozenset[str]
    """The kinds of the sources the nodes use (which SDKs a run needs)."""

    @property
    def recursion_limit(self) -> int:
        # LangGraph counts supersteps; each runs at least one node or loop gate.
        return 2 * self.max_steps + 16


_cache: OrderedDict[tuple[str, frozenset[str], int], CompiledWorkflow] = OrderedDict()
_cache_lock = threading.Lock()


def spec_digest(
    spec: WorkflowSpec,
    sources: Mapping[str, SourceSpec],
    workflows: Mapping[str, SubWorkflow] | None = None,
) -> str:
    body: dict[str, Any] = {
        "spec": spec.model_dump(mode="json", by_alias=True),
        "sources": {k: v.model_dump(mode="json") for k, v in sorted(sources.items())},
    }
    if workflows:  # what each `workflow` node runs, pinned (a changed child is another graph)
        body["workflows"] = {
            node: [sub.workflow_id, sub.version, _validated_digest(sub.validated)]
            for node, sub in sorted(workflows.items())
        }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _validated_digest(validated: ValidationResult) -> str:
    assert validated.spec is not None  # a pinned sub-workflow was valid
    return spec_digest(validated.spec, validated.sources, validated.workflows)


def compile_workflow(
    validated: ValidationResult,
    *,
    state_keys: Iterable[str] = (),
    node_types: NodeRegistry | None = None,
) -> CompiledWorkflow:
    """Compile a validated spec, or return the cached graph for the same spec and state keys.

    Args:
        validated: the result of `validate_spec`; it must be valid.
        state_keys: keys of the initial state beyond the well-known ones, so nodes can read them.
        node_types: the node classes by type; None: the built-in ones and this process's
            enabled plugins (`runtime.plugins.registry`).

    Raises:
        SpecValidationError: the spec is not valid.
    """
    if validated.spec is None or not validated.valid:
        raise SpecValidationError(validated.errors)
    spec = validated.spec
    digest = spec_digest(spec, validated.sources, validated.workflows)
    key = (digest, frozenset(state_keys), plugins.generation())
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    registry = node_types if node_types is not None else {**plugins.node_classes(), **NODE_TYPES}
    compiled = _compile(validated, spec, digest, key[1], registry)
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _compile(
    validated: ValidationResult,
    spec: WorkflowSpec,
    digest: str,
    state_keys: frozenset[str],
    registry: NodeRegistry,
) -> CompiledWorkflow:
    nodes = {n.id: _build_node(n.id, n.type, validated, registry) for n in spec.nodes}
    types = {n.id: n.type for n in spec.nodes}
    for node in nodes.values():
        if isinstance(node, _Aggregator):
            node.node_types = types
    queues = _queues(spec)
    for (_, to), queue in queues.items():
        if isinstance(nodes.get(to), LLMNode):
            cast(LLMNode, nodes[to]).queue = queue
    output_keys = {k for n in nodes.values() if (k := n.meta.output_key or n.result_key)}
    output_keys |= {
        k for n in nodes.values() if isinstance(n.meta, NodeMetadata) for k in n.meta.written_keys()
    }
    graph: StateGraph[Any, RunContext, Any, Any] = StateGraph(
        state_schema(output_keys | state_keys), context_schema=RunContext
    )
    fan_in = _fan_in_nodes(spec.edges)
    for node_id, node in nodes.items():
        runner: Any = _NodeCallable(node, types[node_id])
        graph.add_node(node_id, runner, defer=node_id in fan_in)
    graph.add_edge(START, spec.start_node)
    _add_edges(graph, spec, queues, types)
    limits = spec.limits
    return CompiledWorkflow(
        graph=graph.compile(),
        spec=spec,
        digest=digest,
        node_types=types,
        max_steps=limits.max_steps if limits else 100,
        timeout_seconds=limits.timeout_seconds if limits else None,
        source_kinds=source_kinds(validated),
    )


def _build_node(
    node_id: str, node_type: str, validated: ValidationResult, registry: NodeRegistry
) -> Node:
    meta = validated.metadata[node_id]
    # Strategy types (router, aggregator) wrap their model in a RootModel.
    inner = cast(NodeMetadata, getattr(meta, "root", meta))
    entry = registry[node_type]
    cls = entry[getattr(inner, "strategy", "")] if isinstance(entry, Mapping) else entry
    return cls(node_id, inner, validated.sources)


class _NodeCallable:
    """What LangGraph calls for a node. A callable object, not a closure: LangGraph inspects a
    closure's bytecode for subgraphs, which cost 0.3 s per 1,000 nodes at compile time."""

    def __init__(self, node: Node, node_type: str) -> None:
        self.node = node
        self.node_type = node_type
        self.__name__ = f"node_{node.node_id}"

    async def __call__(self, state: dict[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
        return await execute_node(self.node, self.node_type, state, runtime.context)


def _target(edge: Edge) -> str:
    return END if edge.to == SPEC_END else edge.to


def _fan_in_nodes(edges: list[Edge]) -> set[str]:
    sources: defaultdict[str, set[str]] = defaultdict(set)
    for edge in edges:
        sources[edge.to].add(edge.from_)
    return {node for node, froms in sources.items() if len(froms) > 1 and node != SPEC_END}


def _loop_gate(index: int, edge: Edge) -> Callable[..., Any]:
    bound = edge.loop.max_iterations if edge.loop else 0
    key = f"{index}:{edge.from_}->{edge.to}"

    async def gate(state: dict[str, Any]) -> dict[str, Any]:
        passes = (state.get(LOOPS_KEY) or {}).get(key, 0) + 1
        if passes > bound:
            raise LoopLimitExceeded(
                f"The loop from '{edge.from_}' back to '{edge.to}' ran {bound} time(s), its "
                "loop.max_iterations; the run stopped instead of going round again.",
                node_id=edge.from_,
            )
        return {LOOPS_KEY: {key: passes}}

    return gate


def _queues(spec: WorkflowSpec) -> dict[tuple[str, str], QueueLimits]:
    return {(q.from_, q.to): QueueLimits.from_queue(q) for q in spec.queues}


class _QueueGate:
    """Crossing a queued edge: one message and one request from the queue's buckets."""

    def __init__(self, queue: QueueLimits, target: str, target_type: str) -> None:
        self.queue, self.target, self.target_type = queue, target, target_type
        self.demand = [(lim, 1.0) for lim in queue.limits if lim.name in ("messages", "requests")]
        self.__name__ = f"queue_{queue.queue_id}"

    async def __call__(self, state: dict[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = runtime.context
        try:
            waited = await take(
                ctx.limiter,
                ctx.sleep,
                key=self.queue.key(ctx.tenant),
                queue_id=self.queue.queue_id,
                demand=self.demand,
                max_wait=ctx.max_rate_wait,
                node_id=self.target,
            )
        except RateLimited as error:
            await self._report(ctx, error)
            raise
        ctx.rate_waits[self.target] = ctx.rate_waits.get(self.target, 0.0) + waited
        return {}

    async def _report(self, ctx: RunContext, error: RateLimited) -> None:
        """The target fails without running: its trace says so, like any failed attempt."""
        started_at = ctx.now()
        await ctx.observer.node_started(NodeStarted(self.target, self.target_type, 1, started_at))
        failure = {"code": error.code, "message": error.message}
        await ctx.observer.node_finished(
            NodeFinished(self.target, self.target_type, 1, started_at, 0.0, "failed", error=failure)
        )


def _add_edges(
    graph: StateGraph[Any, Any, Any, Any],
    spec: WorkflowSpec,
    queues: Mapping[tuple[str, str], QueueLimits],
    types: Mapping[str, str],
) -> None:
    outgoing: defaultdict[str, list[tuple[str | None, str]]] = defaultdict(list)
    for index, edge in enumerate(spec.edges):
        target = _target(edge)
        queue = queues.get((edge.from_, edge.to))
        if queue is not None and any(lim.name != "tokens" for lim in queue.limits):
            gate = f"_queue_{index}"
            runner: Any = _QueueGate(queue, edge.to, types.get(edge.to, ""))
            graph.add_node(gate, runner)
            graph.add_edge(gate, target)
            target = gate
        if edge.loop is not None:
            gate = f"_loop_{index}"
            graph.add_node(gate, _loop_gate(index, edge))
            graph.add_edge(gate, target)
            target = gate
        outgoing[edge.from_].append((edge.condition, target))
    for node in spec.nodes:
        routes = outgoing.get(node.id, [])
        if not routes:
            graph.add_edge(node.id, END)
        elif all(condition is None for condition, _ in routes):
            for _, target in routes:
                graph.add_edge(node.id, target)
        else:
            _add_routes(graph, node.id, routes)


def _add_routes(
    graph: StateGraph[Any, Any, Any, Any], node_id: str, routes: list[tuple[str | None, str]]
) -> None:
    by_intent = {condition: target for condition, target in routes if condition is not None}
    default = next((target for condition, target in routes if condition is None), END)

    def route(state: dict[str, Any]) -> str:
        return by_intent.get(state.get("intent"), default)  # type: ignore[arg-type]

    graph.add_conditional_edges(node_id, route, sorted({*by_intent.values(), default}))
