"""The node plugins of this process: loaded once at start (`activate`), read by the compiler,
the validator's options, the published JSON Schema, the system checks and `/health`."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from runtime.nodes.base import Node
from runtime.plugins.loader import PluginSet

_active = PluginSet()
_generation = 0
_lock = threading.Lock()


def activate(plugins: PluginSet) -> PluginSet:
    """Make `plugins` this process's plugins; return the ones they replace."""
    global _active, _generation
    with _lock:
        previous, _active = _active, plugins
        _generation += 1
    return previous


def generation() -> int:
    """Changes whenever the plugins change (compiled graphs of other plugins are not reused)."""
    return _generation


def active() -> PluginSet:
    return _active


def metadata_models() -> dict[str, type[BaseModel]]:
    """Node type → metadata model, for every loaded plugin (what validation takes)."""
    return {name: loaded.plugin.metadata for name, loaded in _active.loaded.items()}


def node_classes() -> dict[str, type[Node]]:
    """Node type → node class, for every loaded plugin (what the compiler takes)."""
    return {name: loaded.node_class for name, loaded in _active.loaded.items()}
