"""Named aggregation functions for `aggregator` nodes with `strategy: function`.

Operators add their own through the AGENTFLOW_AGGREGATIONS setting (dotted paths); tenants
never upload code. A function takes the state and returns the final output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def concat_texts(state: Mapping[str, Any]) -> str:
    """Every string result, in the order the nodes finished, one paragraph each."""
    outputs = state.get("outputs") or {}
    return "\n\n".join(v for v in outputs.values() if isinstance(v, str) and v)


def collect_outputs(state: Mapping[str, Any]) -> dict[str, Any]:
    """Every node's result, by node id, nulls left out."""
    return {k: v for k, v in (state.get("outputs") or {}).items() if v is not None}


def sum_tokens(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"tokens_used": state.get("tokens_used", 0), "cost": state.get("cost", 0.0)}


AGGREGATIONS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "concat": concat_texts,
    "collect": collect_outputs,
    "usage": sum_tokens,
}
