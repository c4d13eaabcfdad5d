"""The WorkflowSpec document (SPEC §1) as strict pydantic models, and its published JSON Schema.

The top-level models keep each node's `metadata` and each source's `config` as plain JSON objects:
the validator checks them separately against the node type's model (`NODE_METADATA`, plus plugin
types) and the source kind's model (`SOURCE_CONFIGS`), so one bad node never hides another's
errors. Those models live in `runtime.node_metadata` and `runtime.source_configs`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator

from runtime.node_metadata import NODE_METADATA, RetryPolicy
from runtime.source_configs import SOURCE_CONFIGS
from runtime.strict import StrictModel

__all__ = [
    "NODE_METADATA",
    "SOURCE_CONFIGS",
    "Bandwidth",
    "Edge",
    "Limits",
    "LoopBound",
    "Node",
    "Queue",
    "RetryPolicy",
    "SourceSpec",
    "WorkflowSpec",
    "workflow_spec_json_schema",
]

END = "END"
NODE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
NodeId = Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN)]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=128)]
JSONObject = dict[str, Any]


class Node(StrictModel):
    id: NodeId
    type: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    metadata: JSONObject = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _not_end(cls, value: str) -> str:
        if value == END:
            raise ValueError("'END' is reserved for edges that end the run; rename the node")
        return value


class LoopBound(StrictModel):
    max_iterations: int = Field(ge=1, le=10_000, description="Passes allowed through this edge.")


class Edge(StrictModel):
    from_: Ref = Field(alias="from")
    to: Ref
    condition: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        default=None, description="Taken when the state's `intent` equals it; null means always."
    )
    loop: LoopBound | None = None


class Bandwidth(StrictModel):
    """Token buckets for one queue; each bound must be positive (checked as `invalid_queue`)."""

    max_messages_per_second: float | None = None
    max_requests_per_minute: float | None = None
    max_tokens_per_minute: float | None = None


class Queue(StrictModel):
    id: Ref
    from_: Ref = Field(alias="from")
    to: Ref
    bandwidth: Bandwidth


class SourceSpec(StrictModel):
    id: Ref
    kind: str = Field(json_schema_extra={"enum": list(SOURCE_CONFIGS)})
    config: JSONObject = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in SOURCE_CONFIGS:
            raise ValueError(
                f"Unknown source kind {value!r}; use one of: {', '.join(SOURCE_CONFIGS)}"
            )
        return value


class Limits(StrictModel):
    timeout_seconds: float | None = Field(default=None, gt=0, description="Bound on the whole run.")
    max_steps: int = Field(default=100, ge=1, description="Bound on node executions in one run.")


class WorkflowSpec(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: str | None = None
    start_node: Ref
    nodes: list[Node] = Field(min_length=1)
    edges: list[Edge] = Field(default_factory=list)
    queues: list[Queue] = Field(default_factory=list)
    sources: list[SourceSpec] = Field(default_factory=list)
    limits: Limits = Limits()
    allow_orphans: bool = Field(
        default=False,
        description="Report nodes unreachable from start_node as warnings, not errors.",
    )


def workflow_spec_json_schema(
    node_types: Mapping[str, type[BaseModel]] | None = None,
) -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of a WorkflowSpec, metadata and configs included.

    `node_types` (plugin type → metadata model) adds plugin types; built-in names win.
    """
    extra = tuple((k, v) for k, v in (node_types or {}).items() if k not in NODE_METADATA)
    return copy.deepcopy(_cached_schema(extra))


@lru_cache(maxsize=8)
def _cached_schema(extra: tuple[tuple[str, type[BaseModel]], ...]) -> dict[str, Any]:
    return _build_schema(extra)


def _build_schema(extra: tuple[tuple[str, type[BaseModel]], ...]) -> dict[str, Any]:
    schema = WorkflowSpec.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    rules = _conditional_refs(defs, "type", "metadata", NODE_METADATA)
    # A plugin's models are named after its type: they never take a built-in model's place.
    rules += _conditional_refs(defs, "type", "metadata", dict(extra), prefix="plugin.")
    defs["Node"]["allOf"] = rules
    defs["Node"]["properties"]["type"]["examples"] = [*NODE_METADATA, *dict(extra)]
    defs["SourceSpec"]["allOf"] = _conditional_refs(defs, "kind", "config", SOURCE_CONFIGS)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "WorkflowSpec"
    return schema


def _conditional_refs(
    defs: dict[str, Any],
    tag: str,
    field: str,
    models: Mapping[str, type[BaseModel]],
    prefix: str = "",
) -> list[dict[str, Any]]:
    """One `if tag == name then field is model` rule per model, its schema put in `defs`; with
    a prefix, each model and the models it nests are named after it (`plugin.<name>.Nested`)."""
    rules = []
    for name, model in models.items():
        nested = f"{prefix}{name}." if prefix else ""
        sub = model.model_json_schema(by_alias=True, ref_template=f"#/$defs/{nested}{{model}}")
        defs.update({nested + key: value for key, value in sub.pop("$defs", {}).items()})
        def_name = f"{prefix}{name}" if prefix else model.__name__
        defs[def_name] = sub
        rules.append(
            {
                "if": {"properties": {tag: {"const": name}}, "required": [tag]},
                "then": {"properties": {field: {"$ref": f"#/$defs/{def_name}"}}},
            }
        )
    return rules
