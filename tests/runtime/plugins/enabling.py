"""A fixture for the app tests: enable node plugins as the operator would, for one test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runtime.plugins.loader import PluginSet
from runtime.plugins.registry import activate, active

Enable = Callable[..., PluginSet]


@pytest.fixture
def enable_plugins(settings: Any) -> Iterator[Enable]:
    """`enable_plugins("text_stats", …)`: set AGENTFLOW_NODE_PLUGINS and load them, as a
    process does at start; the process's plugins come back afterwards."""
    from agentflow_site.plugins import load_node_plugins

    previous = active()

    def enable(*names: str) -> PluginSet:
        settings.AGENTFLOW_NODE_PLUGINS = list(names)
        return load_node_plugins()

    yield enable
    activate(previous)
