"""Node plugins through the API: the installed example package's `text_stats` node validated,
run and published in the WorkflowSpec schema once the operator enables it; unknown otherwise."""

from typing import Any

import pytest

from tests.conftest import IssuedKey, client_for
from tests.runtime.plugins import enabling
from tests.runtime.plugins.enabling import Enable

enable_plugins = enabling.enable_plugins  # the fixture
pytestmark = pytest.mark.django_db
EXECUTE = "/api/v1/workflows/execute"
VALIDATE = "/api/v1/workflows/validate"


def stats_spec(**meta: Any) -> dict[str, Any]:
    return {
        "name": "stats",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input", "metadata": {}},
            {"id": "stats", "type": "text_stats", "metadata": meta},
            {
                "id": "summary",
                "type": "aggregator",
                "metadata": {
                    "strategy": "template",
                    "template": "{{ text_stats.words }} words: {{ text_stats.top_words[0] }}",
                },
            },
        ],
        "edges": [{"from": "input", "to": "stats"}, {"from": "stats", "to": "summary"}],
    }


def execute(key: IssuedKey, spec: dict[str, Any], state: dict[str, Any]) -> Any:
    body = {"workflow": spec, "initial_state": state, "mode": "sync"}
    return client_for(key).post(EXECUTE, body, format="json")


def test_an_enabled_plugin_node_runs_and_is_traced(
    executor_key: IssuedKey, enable_plugins: Enable
) -> None:
    enable_plugins("text_stats")
    text = "The cat sat. The cat slept!\nThe end"
    response = execute(executor_key, stats_spec(top_words=2), {"user_input": text})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "success"
    stats = {
        "characters": 35,
        "words": 8,
        "lines": 2,
        "sentences": 3,
        "reading_seconds": 2.4,
        "top_words": ["the", "cat"],
    }
    assert body["final_state"]["text_stats"] == stats
    assert body["final_state"]["outputs"]["stats"] == stats
    assert body["final_state"]["final_output"] == "8 words: the"
    trace = client_for(executor_key).get(f"/api/v1/executions/{body['execution_id']}").json()
    (node,) = [n for n in trace["nodes"] if n["node_id"] == "stats"]
    assert node["node_type"] == "text_stats"
    assert node["status"] == "succeeded"
    assert node["details"]["input"] == {"text": text}


def test_an_exception_in_the_plugin_fails_the_run_with_plugin_error(
    executor_key: IssuedKey, enable_plugins: Enable
) -> None:
    enable_plugins("text_stats")
    response = execute(executor_key, stats_spec(require_text=True), {"user_input": " "})
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "plugin_error"
    assert body["error"]["message"] == (
        "Node 'stats' failed in plugin 'text_stats' (agentflow-plugin-example 0.1.0): "
        "ValueError: there is no text to measure (require_text is set)"
    )


def test_bad_plugin_metadata_is_a_422_naming_the_field(
    executor_key: IssuedKey, enable_plugins: Enable
) -> None:
    enable_plugins("text_stats")
    spec = stats_spec(words_per_minute=10, text="{{ user_input | nosuchfilter }}")
    response = execute(executor_key, spec, {"user_input": "x"})
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    errors = {(e["type"], e["path"], e["node_id"]) for e in response.json()["errors"]}
    assert errors == {
        ("invalid_metadata", "/nodes/1/metadata/words_per_minute", "stats"),
        ("invalid_template", "/nodes/1/metadata/text", "stats"),
    }


def test_valid_plugin_metadata_validates(viewer_key: IssuedKey, enable_plugins: Enable) -> None:
    enable_plugins("text_stats")
    response = client_for(viewer_key).post(VALIDATE, stats_spec(top_words=3), format="json")
    assert response.json() == {"valid": True, "errors": [], "warnings": []}


def test_a_plugin_not_in_the_allow_list_is_an_unknown_node_type(
    viewer_key: IssuedKey, enable_plugins: Enable
) -> None:
    enable_plugins()  # installed, not enabled
    response = client_for(viewer_key).post(VALIDATE, stats_spec(), format="json").json()
    assert [(e["type"], e["path"]) for e in response["errors"]] == [
        ("unknown_node_type", "/nodes/1/type")
    ]
    assert "neither built in nor a registered plugin" in response["errors"][0]["message"]


def test_the_workflow_spec_schema_holds_the_enabled_plugins_model(
    viewer_key: IssuedKey, enable_plugins: Enable
) -> None:
    client = client_for(viewer_key)
    enable_plugins()
    assert "plugin.text_stats" not in client.get("/api/v1/schema/workflow-spec").json()["$defs"]
    enable_plugins("text_stats")
    schema = client.get("/api/v1/schema/workflow-spec").json()
    model = schema["$defs"]["plugin.text_stats"]
    assert model["properties"]["words_per_minute"]["minimum"] == 50
    assert model["additionalProperties"] is False
    assert "text_stats" in schema["$defs"]["Node"]["properties"]["type"]["examples"]
    rule = {
        "if": {"properties": {"type": {"const": "text_stats"}}, "required": ["type"]},
        "then": {"properties": {"metadata": {"$ref": "#/$defs/plugin.text_stats"}}},
    }
    assert rule in schema["$defs"]["Node"]["allOf"]


def test_a_spec_with_a_plugin_node_has_a_picture(
    viewer_key: IssuedKey, enable_plugins: Enable
) -> None:
    enable_plugins("text_stats")
    client = client_for(viewer_key)
    response = client.post("/api/v1/workflows/graph?format=mermaid", stats_spec(), format="json")
    assert response.status_code == 200
    assert "text_stats" in response.content.decode()
