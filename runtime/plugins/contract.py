"""What a node plugin is: its metadata model, its async run function, where its result goes.

A plugin package exposes one `NodePlugin` per node type through the `agentflow.nodes` entry-point
group; the entry point's name is the node type. The run function is given the node's validated
metadata, a copy of the state and a `PluginContext`: sandboxed template rendering and a note for
the trace, nothing else (no credentials, no sources, no database).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel

from runtime.node_metadata import Loc, NodeMetadata
from runtime.state import INTERNAL_KEYS

__all__ = ["NodePlugin", "PluginContext", "PluginMetadata", "Template"]

STATE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED_KEYS = frozenset(
    {"user_input", "intent", "outputs", "errors", "tokens_used", "cost", "metadata"} | INTERNAL_KEYS
)
"""State keys a plugin's `result_key` may not name: the run's bookkeeping and its input."""


class _TemplateMark:
    """Marks a metadata field whose string is a Jinja template (checked at validation)."""

    def __repr__(self) -> str:
        return "Template"


TEMPLATE = _TemplateMark()
Template = Annotated[str, TEMPLATE]
"""A metadata field holding a template: `prompt: Template = "{{ user_input }}"`."""


class PluginMetadata(NodeMetadata):
    """The base of a plugin's metadata model: `output_key`, `timeout_seconds`, `retry` and
    `on_error` come with it, unknown fields are refused, and every `Template` field is checked
    at validation like a built-in node's templates (`invalid_template`)."""

    def templates(self) -> Iterator[tuple[Loc, str]]:
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, str) and any(m is TEMPLATE for m in info.metadata):
                yield (info.alias or name,), value


RunFunction = Callable[[Any, Mapping[str, Any], "PluginContext"], Awaitable[Any]]


@dataclass(frozen=True)
class NodePlugin:
    """One node type a package adds; point an `agentflow.nodes` entry point at it."""

    metadata: type[BaseModel]
    """The metadata model: a `PluginMetadata` subclass."""
    run: RunFunction
    """`async def run(meta, state, ctx) -> result`: the result must be JSON; it goes to
    `outputs[node_id]`, to `result_key` and to the node's `output_key`."""
    result_key: str | None = None
    """A state key the result is also written to (like `text_result` for llm); None: only
    `outputs[node_id]` and `output_key`."""
    description: str = ""

    def __post_init__(self) -> None:
        problem = plugin_problem(self)
        if problem:
            raise TypeError(problem)


def plugin_problem(plugin: NodePlugin) -> str | None:
    """Why this plugin cannot be used, or None."""
    model = plugin.metadata
    if not (isinstance(model, type) and issubclass(model, NodeMetadata)):
        return f"its metadata must be a subclass of PluginMetadata, not {model!r}"
    if not inspect.iscoroutinefunction(plugin.run):
        return "its run must be an `async def` function (meta, state, ctx) -> result"
    key = plugin.result_key
    if key is not None and (not STATE_KEY.match(key) or key in RESERVED_KEYS):
        return f"its result_key {key!r} is not a state key a plugin may write"
    return None


class PluginContext:
    """What a plugin's run function may use besides its metadata and the state."""

    def __init__(
        self,
        node_id: str,
        render: Callable[[str], Awaitable[str]],
        note_input: Callable[[Any], None],
    ) -> None:
        self.node_id = node_id
        self._render = render
        self._note_input = note_input

    async def render(self, template: str) -> str:
        """Render a template against the state in AgentFlow's sandbox, within its limits and
        the node's deadline (a template error fails the node with `template_error`)."""
        return await self._render(template)

    def note_input(self, given: Any) -> None:
        """Record what this attempt was given (a rendered text): the trace shows it as
        `details.input`, redacted and bounded."""
        self._note_input(given)
