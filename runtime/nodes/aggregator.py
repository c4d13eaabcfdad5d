"""Aggregators combine what other nodes produced into `final_output` (SPEC §2 `aggregator`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.node_metadata import (
    FunctionAggregator,
    MergeAggregator,
    PriorityAggregator,
    TemplateAggregator,
)
from runtime.nodes.base import Node, NodeOutput, State

# Node types whose result is routing or bookkeeping, not content to merge.
NOT_CONTENT = frozenset({"input", "router"})


class _Aggregator(Node):
    kind = "aggregator"
    result_key = "final_output"
    node_types: Mapping[str, str] = {}
    """Node id → type, set by the compiler (merge leaves routers and inputs out)."""


class MergeNode(_Aggregator):
    """All results so far, by node id, in one object (routers, inputs and nulls left out)."""

    meta: MergeAggregator

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        outputs: Mapping[str, Any] = state.get("outputs") or {}
        merged = {
            node_id: value
            for node_id, value in outputs.items()
            if value is not None and self.node_types.get(node_id) not in NOT_CONTENT
        }
        return NodeOutput(result=merged)


class PriorityNode(_Aggregator):
    """The first key in `order` whose value is present (not null, not empty) wins."""

    meta: PriorityAggregator

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        for key in self.meta.order:
            value = state.get(key)
            if value not in (None, "", [], {}):
                return NodeOutput(result=value, details={"chosen": key})
        return NodeOutput(result=None, details={"chosen": None})


class TemplateNode(_Aggregator):
    meta: TemplateAggregator

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        text = await self.evaluate(lambda: self.render(self.meta.template, state))
        return NodeOutput(result=text)


class FunctionNode(_Aggregator):
    meta: FunctionAggregator

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        function = ctx.aggregations.get(self.meta.function)
        if function is None:
            known = ", ".join(sorted(ctx.aggregations)) or "none"
            raise NodeError(
                f"No aggregation function '{self.meta.function}' is registered (known: {known}).",
                node_id=self.node_id,
            )
        return NodeOutput(result=function(state))


AGGREGATOR_STRATEGIES: dict[str, type[Node]] = {
    "merge": MergeNode,
    "priority": PriorityNode,
    "template": TemplateNode,
    "function": FunctionNode,
}
