"""The node contract: a small class with a `kind`, its metadata model, and an async `run` that
reads the state and returns what the node produced — never mutating the state it was given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.node_metadata import NodeMetadata
from runtime.spec import SourceSpec
from runtime.templates import render_template

State = Mapping[str, Any]


@dataclass(frozen=True)
class NodeOutput:
    result: Any
    """The node's main result: written to its result key (or `output_key`) and to `outputs`."""
    tokens: int = 0
    cost: float = 0.0
    updates: Mapping[str, Any] = field(default_factory=dict)
    """Other state keys the node sets (a router's `intent`)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Facts for the trace only (the model that answered)."""


class Node:
    kind: ClassVar[str]
    result_key: ClassVar[str | None] = None
    """The well-known state key the result goes to; None: only `outputs` (and `output_key`)."""

    def __init__(self, node_id: str, meta: NodeMetadata, sources: Mapping[str, SourceSpec]) -> None:
        self.node_id = node_id
        self.meta = meta
        self.sources = sources

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        raise NotImplementedError

    def render(self, template: str, state: State) -> str:
        return render_template(template, state, node_id=self.node_id)

    def source(self) -> SourceSpec:
        ref = self.meta.source_ref()
        if ref is None or ref not in self.sources:
            raise NodeError(f"Node '{self.node_id}' names no usable source.", node_id=self.node_id)
        return self.sources[ref]

    def adapter(self, ctx: RunContext) -> Any:
        return ctx.adapter(self.source())
