"""Node types that operator-installed packages add (SPEC §2, plugins), and what a plugin's
author imports: `NodePlugin`, `PluginMetadata`, `Template`, `PluginContext`, `PluginError`.

See docs/plugins.md. Discovery is `runtime.plugins.loader`, the process's set
`runtime.plugins.registry`.
"""

from runtime.errors import PluginError
from runtime.plugins.contract import NodePlugin, PluginContext, PluginMetadata, Template

__all__ = ["NodePlugin", "PluginContext", "PluginError", "PluginMetadata", "Template"]
