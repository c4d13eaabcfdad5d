"""Plugins the runtime tests load through entry points made by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from runtime.plugins import NodePlugin, PluginContext, PluginError, PluginMetadata, Template


class GreetMetadata(PluginMetadata):
    greeting: Template = "Hello {{ name }}"
    fail: Literal["", "exception", "plugin_error", "not_json"] = ""
    sleep: float = 0


async def greet(meta: GreetMetadata, state: Mapping[str, Any], ctx: PluginContext) -> Any:
    text = await ctx.render(meta.greeting)
    ctx.note_input({"greeting": text})
    await asyncio.sleep(meta.sleep)
    if meta.fail == "exception":
        raise KeyError(f"no luck with {text}")
    if meta.fail == "plugin_error":
        raise PluginError("The greeting is not polite enough; add 'please'.")
    if meta.fail == "not_json":
        return {"when": object()}
    state["intent"] = "tampered"  # type: ignore[index]  # a copy: the run's state keeps its own
    return {"greeting": text, "seen_intent": state.get("intent")}


GREET = NodePlugin(metadata=GreetMetadata, run=greet, result_key="greeting")


def sync_run(meta: Any, state: Mapping[str, Any], ctx: PluginContext) -> Any:
    return None
