"""Plugins are found through the `agentflow.nodes` entry points of installed packages, only
those the allow-list enables are loaded, and one that cannot be used is reported, never raised."""

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from pydantic import BaseModel

from runtime.plugins import NodePlugin
from runtime.plugins.loader import GROUP, load_plugins
from tests.runtime.plugins.dists import BROKEN, broken_package, on_path, write_dist
from tests.runtime.plugins.sample import GreetMetadata, greet, sync_run


def test_the_installed_example_plugin_loads_when_the_allow_list_names_it() -> None:
    plugins = load_plugins(["text_stats"])
    assert list(plugins.loaded) == ["text_stats"]
    loaded = plugins.loaded["text_stats"]
    assert (loaded.package, loaded.version) == ("agentflow-plugin-example", "0.1.0")
    assert loaded.plugin.metadata.__name__ == "TextStatsMetadata"
    assert plugins.problems == ()


def test_no_plugin_is_loaded_with_an_empty_allow_list() -> None:
    assert load_plugins([]).loaded == {}


def test_a_star_enables_every_installed_plugin() -> None:
    assert "text_stats" in load_plugins(["*"]).loaded


def test_a_name_no_package_provides_is_reported_as_not_installed() -> None:
    plugins = load_plugins(["text_stats", "no_such_plugin"])
    assert list(plugins.loaded) == ["text_stats"]
    (problem,) = plugins.problems
    assert (problem.name, problem.installed) == ("no_such_plugin", False)


def test_broken_plugins_are_reported_each_with_its_reason_and_the_others_load(
    tmp_path: Path,
) -> None:
    with broken_package(tmp_path):
        plugins = load_plugins(["text_stats", *BROKEN])
    assert list(plugins.loaded) == ["text_stats"]
    errors = {p.name: p.error for p in plugins.problems}
    assert set(errors) == set(BROKEN)
    assert "ModuleNotFoundError" in errors["broken_import"]
    assert "is a str, not a NodePlugin" in errors["not_a_plugin"]
    assert "RuntimeError: this plugin cannot start" in errors["explodes"]
    assert "clashes with the built-in node type 'llm'" in errors["llm"]
    assert {p.package for p in plugins.problems} == {"agentflow-test-broken"}


def test_a_broken_plugin_not_enabled_is_never_imported(tmp_path: Path) -> None:
    with broken_package(tmp_path):
        plugins = load_plugins(["text_stats"])
    assert plugins.problems == ()


def test_two_packages_with_the_same_plugin_name_load_neither(tmp_path: Path) -> None:
    target = "tests.runtime.plugins.sample:GREET"
    write_dist(tmp_path / "a", "agentflow-test-one", {"greet": target})
    write_dist(tmp_path / "b", "agentflow-test-two", {"greet": target})
    with on_path(tmp_path / "a"), on_path(tmp_path / "b"):
        plugins = load_plugins(["greet"])
    assert plugins.loaded == {}
    assert "agentflow-test-one, agentflow-test-two" in plugins.problems[0].error


def test_a_plugin_from_a_hand_made_entry_point_names_its_module() -> None:
    found = [EntryPoint("greet", "tests.runtime.plugins.sample:GREET", GROUP)]
    loaded = load_plugins(["greet"], found=lambda: found).loaded["greet"]
    assert loaded.label == "plugin 'greet' (tests.runtime.plugins.sample)"


def test_a_run_function_must_be_async() -> None:
    with pytest.raises(TypeError, match="async def"):
        NodePlugin(metadata=GreetMetadata, run=sync_run)


def test_the_metadata_must_be_a_plugin_metadata_model() -> None:
    class Plain(BaseModel):
        x: int = 1

    with pytest.raises(TypeError, match="subclass of PluginMetadata"):
        NodePlugin(metadata=Plain, run=greet)


@pytest.mark.parametrize("key", ["outputs", "errors", "tokens_used", "intent", "bad key"])
def test_a_result_key_may_not_name_the_runs_bookkeeping(key: str) -> None:
    with pytest.raises(TypeError, match="result_key"):
        NodePlugin(metadata=GreetMetadata, run=greet, result_key=key)
