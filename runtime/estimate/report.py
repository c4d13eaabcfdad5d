"""The dry run's estimate: each provider call's tokens and price, and the dearest and the
cheapest run through the graph — from the spec and an initial state alone, calling nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from runtime.estimate.calls import Call, Registry, calls_of, cost_of, inner
from runtime.estimate.paths import Graph, Loop, Run, Weight, cheapest, most_expensive
from runtime.node_metadata import KeywordRouter, LLMRouter, RulesRouter, SemanticRouter
from runtime.nodes import NODE_TYPES
from runtime.plugins import registry as plugins
from runtime.pricing import PriceTable
from runtime.spec import END, WorkflowSpec
from runtime.validation import ValidationResult

ROUTERS = (KeywordRouter, RulesRouter, LLMRouter, SemanticRouter)


class Price(TypedDict):
    input: float
    output: float


class NodeEstimate(TypedDict):
    node_id: str
    call: str
    source: str
    model: str
    tokenizer: str
    prompt_tokens: int
    prompt_tokens_max: int
    completion_tokens_max: int
    price_per_million_tokens: Price
    cost: float
    cost_max: float
    unknown_inputs: list[str]
    rendered: bool


class PathEstimate(TypedDict):
    nodes: list[str]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    loop_passes: dict[str, int]


class Estimate(TypedDict):
    currency: str
    nodes: list[NodeEstimate]
    most_expensive: PathEstimate
    cheapest: PathEstimate


def estimate_workflow(
    validated: ValidationResult,
    initial_state: Mapping[str, Any],
    *,
    prices: PriceTable,
    registry: Registry | None = None,
) -> Estimate:
    """Estimate what running a valid spec from `initial_state` costs; nothing is called.

    Args:
        validated: a valid result of `validate_spec` (its spec, metadata and sources).
        prices: the operator's price table (USD per million tokens).
        registry: node types by name; default: the built-in ones and the enabled plugins'.
    """
    assert validated.spec is not None, "estimate a valid spec only"
    registry = registry if registry is not None else {**plugins.node_classes(), **NODE_TYPES}
    calls = calls_of(validated, initial_state, registry)
    graph = graph_of(validated.spec, validated.metadata)
    low: dict[str, Weight] = {c.node_id: _weight(c, prices, upper=False) for c in calls}
    high: dict[str, Weight] = {c.node_id: _weight(c, prices, upper=True) for c in calls}
    return {
        "currency": "USD",
        "nodes": [_node(call, prices) for call in calls],
        "most_expensive": _path(most_expensive(graph, high)),
        "cheapest": _path(cheapest(graph, low)),
    }


def _weight(call: Call, prices: PriceTable, *, upper: bool) -> Weight:
    prompt = call.prompt_tokens_max if upper else call.prompt_tokens
    return cost_of(call, prices, upper=upper), prompt, call.completion_tokens_max


def _node(call: Call, prices: PriceTable) -> NodeEstimate:
    price_in, price_out = prices.price_of(call.model)
    return {
        "node_id": call.node_id,
        "call": call.call,
        "source": call.source.id,
        "model": call.model,
        "tokenizer": call.tokenizer,
        "prompt_tokens": call.prompt_tokens,
        "prompt_tokens_max": call.prompt_tokens_max,
        "completion_tokens_max": call.completion_tokens_max,
        "price_per_million_tokens": {"input": price_in, "output": price_out},
        "cost": cost_of(call, prices, upper=False),
        "cost_max": cost_of(call, prices, upper=True),
        "unknown_inputs": list(call.unknown_inputs),
        "rendered": call.rendered,
    }


def _path(run: Run) -> PathEstimate:
    cost, prompt, completion = run.weight
    return {
        "nodes": run.nodes,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": cost,
        "loop_passes": run.loop_passes,
    }


def graph_of(spec: WorkflowSpec, metadata: Mapping[str, Any]) -> Graph:
    """The spec's edges as alternatives per node (SPEC §1 edges: fan-out, routes, loops)."""
    out: dict[str, list[Any]] = {node.id: [] for node in spec.nodes}
    for edge in spec.edges:
        out[edge.from_].append(edge)
    branches = {
        node.id: _alternatives(out[node.id], inner(metadata.get(node.id))) for node in spec.nodes
    }
    loops = [Loop(e.from_, e.to, e.loop.max_iterations) for e in spec.edges if e.loop]
    return Graph(spec.start_node, branches, loops)


def _alternatives(edges: list[Any], meta: Any) -> list[tuple[str, ...]]:
    ahead = [e for e in edges if e.loop is None]
    if all(e.condition is None for e in edges):
        return [tuple(e.to for e in ahead if e.to != END)]
    routes = {e.condition: e.to for e in ahead if e.condition is not None}
    alternatives: list[tuple[str, ...]] = [
        () if to == END else (to,) for to in dict.fromkeys(routes.values())
    ]
    named = {e.condition for e in edges if e.condition is not None}
    produced = meta.produced_intents() if isinstance(meta, ROUTERS) else None
    if produced is None or not produced <= named:  # some intent takes the default route
        default = next((e.to for e in ahead if e.condition is None), END)
        alternatives.append(() if default == END else (default,))
    return alternatives or [()]
