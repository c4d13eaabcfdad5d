"""Find the node plugins the operator installed and enabled (entry-point group `agentflow.nodes`).

Loading never raises: a plugin that cannot be used — its import fails, its object is not a
`NodePlugin`, its name clashes with a built-in type or another package's plugin, its metadata
has no JSON Schema — is left out and reported as a `PluginProblem`; the others load.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from runtime.nodes import NODE_TYPES
from runtime.plugins.contract import NodePlugin, plugin_problem
from runtime.plugins.node import LoadedPlugin

GROUP = "agentflow.nodes"
ALL = "*"
"""In the allow-list: every installed plugin."""
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginProblem:
    name: str
    """The entry point's name (the node type it would be)."""
    error: str
    package: str | None = None
    installed: bool = True
    """False: the allow-list names a plugin no installed package provides."""

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "package": self.package, "error": self.error}


@dataclass(frozen=True)
class PluginSet:
    """The plugins of this process: those loaded, and what went wrong with the others."""

    loaded: dict[str, LoadedPlugin] = field(default_factory=dict)
    problems: tuple[PluginProblem, ...] = ()
    enabled: tuple[str, ...] = ()
    """The allow-list this set was loaded with."""


def load_plugins(
    enabled: Collection[str], found: Callable[[], Iterable[EntryPoint]] | None = None
) -> PluginSet:
    """Load the installed plugins named in `enabled` (`*`: all); never raises.

    Args:
        enabled: entry-point names from the operator's allow-list.
        found: the installed entry points (default: the `agentflow.nodes` group).
    """
    wanted = tuple(dict.fromkeys(enabled))
    if not wanted:
        return PluginSet()
    points = list(found() if found is not None else entry_points(group=GROUP))
    take_all = ALL in wanted
    chosen = [ep for ep in points if take_all or ep.name in wanted]
    loaded: dict[str, LoadedPlugin] = {}
    problems: list[PluginProblem] = []
    clashing = _clashing(chosen)
    for ep in chosen:
        problem = clashing.get(ep.name) or _name_problem(ep.name)
        result = _problem(ep, problem) if problem else _load(ep)
        if isinstance(result, PluginProblem):
            problems.append(result)
        else:
            loaded[ep.name] = result
    names = {ep.name for ep in points}
    problems += [_not_installed(name) for name in wanted if name != ALL and name not in names]
    for failed in problems:
        log.warning("node plugin %s not loaded: %s", failed.name, failed.error)
    return PluginSet(loaded, tuple(problems), wanted)


def _package(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:  # an entry point made by hand (tests): its module stands for the package
        return ep.module, ""
    return dist.name, dist.version


def _problem(ep: EntryPoint, error: str) -> PluginProblem:
    return PluginProblem(ep.name, error, _package(ep)[0])


def _not_installed(name: str) -> PluginProblem:
    error = (
        "AGENTFLOW_NODE_PLUGINS names it, but no installed package provides an "
        f"'{GROUP}' entry point of that name"
    )
    return PluginProblem(name, error, None, installed=False)


def _clashing(points: list[EntryPoint]) -> dict[str, str]:
    packages: dict[str, list[str]] = {}
    for ep in points:
        packages.setdefault(ep.name, []).append(_package(ep)[0])
    return {
        name: f"several packages provide it ({', '.join(sorted(found))}); uninstall all but one"
        for name, found in packages.items()
        if len(found) > 1
    }


def _name_problem(name: str) -> str | None:
    if name in NODE_TYPES:
        return f"its name clashes with the built-in node type '{name}'; rename the entry point"
    if not NAME.match(name):
        return "its name is not a node type (a letter, then letters, digits, _ . -; 64 at most)"
    return None


def _load(ep: EntryPoint) -> LoadedPlugin | PluginProblem:
    package, version = _package(ep)
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:  # a plugin's import must not stop the server
        return _problem(ep, f"importing {ep.value} failed: {type(exc).__name__}: {exc}")
    if not isinstance(obj, NodePlugin):
        return _problem(ep, f"{ep.value} is a {type(obj).__name__}, not a NodePlugin")
    problem = plugin_problem(obj) or _schema_problem(obj)
    if problem:
        return _problem(ep, problem)
    log.info("node plugin %s loaded from %s %s", ep.name, package, version)
    return LoadedPlugin(ep.name, obj, package, version)


def _schema_problem(plugin: NodePlugin) -> str | None:
    try:
        plugin.metadata.model_json_schema(by_alias=True)
    except Exception as exc:  # published at /api/v1/schema/workflow-spec: it must build
        return f"its metadata model has no JSON Schema: {type(exc).__name__}: {exc}"
    return None
