"""A plugin's node type as the compiler sees it: a `Node` subclass that calls the plugin.

It runs through `runtime.execute` like every built-in node: step count, timeout, retries,
`on_error`, size limits, redaction, trace events. An exception the plugin lets out (other than
an AgentFlow `NodeError`) fails the node with `plugin_error`, naming the plugin and its package.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from runtime.context import RunContext
from runtime.errors import NodeError, PluginError
from runtime.nodes.base import Node, NodeOutput, State
from runtime.plugins.contract import NodePlugin, PluginContext


@dataclass(frozen=True)
class LoadedPlugin:
    """An enabled plugin and where it came from."""

    name: str
    """The entry point's name: the node type."""
    plugin: NodePlugin
    package: str
    version: str

    @property
    def label(self) -> str:
        return f"plugin '{self.name}' ({self.package} {self.version})".replace(" )", ")")

    @cached_property
    def node_class(self) -> type[Node]:
        attrs = {"kind": self.name, "result_key": self.plugin.result_key, "loaded": self}
        return type(f"PluginNode[{self.name}]", (PluginNode,), attrs)


class PluginNode(Node):
    loaded: ClassVar[LoadedPlugin]

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        def note(given: Any) -> None:
            ctx.note_input(self.node_id, given)

        given = PluginContext(self.node_id, lambda t: self._render(t, state), note)
        mine = copy.deepcopy(dict(state))  # the plugin cannot change the run's state
        try:
            result = await self.loaded.plugin.run(self.meta, mine, given)
        except NodeError as error:
            error.node_id = error.node_id or self.node_id
            raise
        except Exception as exc:
            raise PluginError(
                f"Node '{self.node_id}' failed in {self.loaded.label}: {type(exc).__name__}: {exc}",
                node_id=self.node_id,
            ) from exc
        self._check_json(result)
        return NodeOutput(result=result, details={"plugin": self.loaded.name})

    def _check_json(self, result: Any) -> None:
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise PluginError(
                f"Node '{self.node_id}': {self.loaded.label} returned a result that is not "
                f"JSON ({exc}).",
                node_id=self.node_id,
            ) from None

    async def _render(self, template: str, state: State) -> str:
        return await self.evaluate(lambda: self.render(template, state))
