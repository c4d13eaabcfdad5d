"""Installed packages made on the spot: a `.dist-info` (and modules) in a directory put on
sys.path, found by importlib.metadata exactly as a pip-installed package is."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

BROKEN = {
    "broken_import": "agentflow_no_such_module:plugin",  # ModuleNotFoundError
    "not_a_plugin": "agentflow_test_broken:NOT_A_PLUGIN",  # a string, not a NodePlugin
    "explodes": "agentflow_test_broken.explodes:plugin",  # its module raises on import
    "llm": "agentflow_plugin_example:text_stats",  # clashes with a built-in type
}
"""Entry points of the `agentflow-test-broken` package, each broken its own way."""
BROKEN_MODULES = {
    "agentflow_test_broken/__init__.py": "NOT_A_PLUGIN = 'a string'\n",
    "agentflow_test_broken/explodes.py": "raise RuntimeError('this plugin cannot start')\n",
}


def write_dist(
    root: Path,
    name: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str] | None = None,
    version: str = "0.0.1",
) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"{ep} = {target}" for ep, target in entry_points.items()]
    (info / "entry_points.txt").write_text("[agentflow.nodes]\n" + "\n".join(lines) + "\n")
    for path, text in (modules or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


@contextmanager
def on_path(root: Path) -> Iterator[Path]:
    """`root`'s packages installed for the duration (their modules forgotten afterwards)."""
    sys.path.append(str(root))
    importlib.invalidate_caches()
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m.startswith("agentflow_test_")]:
            del sys.modules[module]


@contextmanager
def broken_package(root: Path) -> Iterator[Path]:
    """The `agentflow-test-broken` package, installed for the duration."""
    write_dist(root, "agentflow-test-broken", BROKEN, BROKEN_MODULES)
    with on_path(root):
        yield root
