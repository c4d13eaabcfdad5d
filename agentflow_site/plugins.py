"""Node plugins as the operator sees them: loaded at start from AGENTFLOW_NODE_PLUGINS, reported
by `manage.py check` (agentflow.W020, W021) and by `/health` (`plugins`). See docs/plugins.md.

A plugin that cannot be loaded never stops the server: it is left out (a spec naming its type
is `unknown_node_type`), reported, and the other plugins work.
"""

from typing import Any

from django.conf import settings
from django.core.checks import Warning

from runtime.plugins.loader import PluginSet, load_plugins
from runtime.plugins.registry import activate, active

OK, DEGRADED = "ok", "degraded"


def load_node_plugins() -> PluginSet:
    """Load the plugins AGENTFLOW_NODE_PLUGINS enables and make them this process's."""
    plugins = load_plugins(settings.AGENTFLOW_NODE_PLUGINS)
    activate(plugins)
    return plugins


def plugin_warnings() -> list[Warning]:
    """One warning per enabled plugin that is not in use, saying why."""
    warnings = []
    for problem in active().problems:
        if problem.installed:
            warnings.append(
                Warning(
                    f"Node plugin '{problem.name}' ({problem.package}) could not be loaded: "
                    f"{problem.error}.",
                    hint="Fix or uninstall the package, or take the name out of "
                    "AGENTFLOW_NODE_PLUGINS. Until then specs using this type are refused "
                    "(unknown_node_type); the other plugins work.",
                    id="agentflow.W020",
                )
            )
        else:
            warnings.append(
                Warning(
                    f"AGENTFLOW_NODE_PLUGINS names '{problem.name}', which no installed "
                    "package provides.",
                    hint="Install the plugin's package in this environment (pip install …), "
                    "or check the name: it is the entry point's name in the agentflow.nodes group.",
                    id="agentflow.W021",
                )
            )
    return warnings


def plugins_health() -> dict[str, Any]:
    """`/health`'s `plugins`: those in use, and those enabled but not loaded (`degraded`)."""
    plugins = active()
    return {
        "status": DEGRADED if plugins.problems else OK,
        "enabled": [
            {"type": name, "package": loaded.package, "version": loaded.version}
            for name, loaded in sorted(plugins.loaded.items())
        ],
        "failed": [problem.to_dict() for problem in plugins.problems],
    }
