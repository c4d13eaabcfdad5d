"""An enabled plugin that cannot be loaded is a system check warning and a `plugins` entry in
`/health`; the server starts and answers, and the plugins that load work."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django.core import checks

from tests.conftest import issue_key
from tests.runtime.plugins import enabling
from tests.runtime.plugins.dists import BROKEN, BROKEN_MODULES, broken_package, write_dist
from tests.runtime.plugins.enabling import Enable
from tests.stack import ROOT, Stack, stack_env

enable_plugins = enabling.enable_plugins  # the fixture
ENABLED = ["text_stats", *BROKEN, "not_installed"]


def plugin_warnings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in checks.run_checks():
        if message.id in ("agentflow.W020", "agentflow.W021"):
            found.setdefault(message.id, []).append(message.msg)
    return found


@pytest.mark.django_db
def test_each_plugin_that_did_not_load_is_a_warning_and_in_health(
    api: Any, enable_plugins: Enable, tmp_path: Path
) -> None:
    with broken_package(tmp_path):
        enable_plugins(*ENABLED)
    warnings = plugin_warnings()
    assert len(warnings["agentflow.W020"]) == len(BROKEN)
    assert any(
        "'explodes' (agentflow-test-broken) could not be loaded" in w and "cannot start" in w
        for w in warnings["agentflow.W020"]
    )
    assert warnings["agentflow.W021"] == [
        "AGENTFLOW_NODE_PLUGINS names 'not_installed', which no installed package provides."
    ]
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    plugins = body["plugins"]
    assert plugins["status"] == "degraded"
    assert plugins["enabled"] == [
        {"type": "text_stats", "package": "agentflow-plugin-example", "version": "0.1.0"}
    ]
    assert {p["name"] for p in plugins["failed"]} == {*BROKEN, "not_installed"}
    assert api.get("/health/ready").status_code == 200


@pytest.mark.django_db
def test_with_no_plugin_enabled_there_is_no_warning(api: Any, enable_plugins: Enable) -> None:
    enable_plugins()
    assert plugin_warnings() == {}
    assert api.get("/health").json()["plugins"] == {"status": "ok", "enabled": [], "failed": []}


@pytest.mark.django_db
def test_the_openapi_documents_an_enabled_plugins_metadata(
    api: Any, enable_plugins: Enable
) -> None:
    enable_plugins("text_stats")
    document = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = document["components"]["schemas"]
    model = components["WorkflowSpec_plugin.text_stats"]
    assert set(model["properties"]) >= {"text", "words_per_minute", "output_key", "retry"}
    branch = {
        "properties": {
            "type": {"const": "text_stats"},
            "metadata": {"$ref": "#/components/schemas/WorkflowSpec_plugin.text_stats"},
        },
        "required": ["type"],
    }
    assert branch in components["WorkflowSpec_Node"]["anyOf"]


def _env_with_broken(tmp_path: Path, base: dict[str, str]) -> dict[str, str]:
    path = [str(tmp_path / "site"), base.get("PYTHONPATH", "")]
    return {
        **base,
        "AGENTFLOW_NODE_PLUGINS": ",".join(ENABLED),
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
    }


def test_manage_py_check_warns_and_passes(tmp_path: Path) -> None:
    write_dist(tmp_path / "site", "agentflow-test-broken", BROKEN, BROKEN_MODULES)
    env = _env_with_broken(tmp_path, {**os.environ, "AGENTFLOW_DATA_DIR": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert out.count("agentflow.W020") == len(BROKEN)
    assert out.count("agentflow.W021") == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_server_started_with_broken_plugins_answers_and_runs_the_others(
    tenant: Any, tmp_path: Path
) -> None:
    write_dist(tmp_path / "site", "agentflow-test-broken", BROKEN, BROKEN_MODULES)
    key = issue_key(tenant, "executor")
    stack = Stack(_env_with_broken(tmp_path, stack_env(tmp_path)), tmp_path)
    try:
        stack.web()
        health = httpx2.get(f"{stack.url}/health", timeout=15).json()
        assert health["plugins"]["status"] == "degraded"
        assert {p["name"] for p in health["plugins"]["failed"]} == {*BROKEN, "not_installed"}
        spec: dict[str, Any] = {
            "name": "stats",
            "start_node": "input",
            "nodes": [
                {"id": "input", "type": "input"},
                {"id": "stats", "type": "text_stats"},
                {"id": "broken", "type": "explodes"},
            ],
            "edges": [{"from": "input", "to": "stats"}, {"from": "stats", "to": "broken"}],
        }
        headers = {"X-API-Key": key.secret}
        body = {"workflow": spec, "initial_state": {"user_input": "one two"}}
        refused = httpx2.post(f"{stack.url}/api/v1/workflows/execute", json=body, headers=headers)
        assert refused.status_code == 422
        assert [e["type"] for e in refused.json()["errors"]] == ["unknown_node_type"]
        spec["nodes"].pop()
        spec["edges"].pop()
        ran = httpx2.post(
            f"{stack.url}/api/v1/workflows/execute", json=body, headers=headers, timeout=60
        )
        assert ran.status_code == 200, ran.text
        assert ran.json()["final_state"]["text_stats"]["words"] == 2
    finally:
        stack.stop()
