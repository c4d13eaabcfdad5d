import json
import time
from pathlib import Path

import pytest
from django.test import override_settings

from tenants.management.commands.bootstrap_demo import DEMO_ENV_GRANTS
from tenants.models import Tenant
from tests.conftest import IssuedKey, client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/workflows/validate"
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))
EXAMPLE_ENV = DEMO_ENV_GRANTS  # every example is valid for the demo tenant `make run` makes


def post_text(key: IssuedKey, text: str):  # type: ignore[no-untyped-def,unused-ignore]
    return client_for(key).post(URL, data=text, content_type="application/json")


@pytest.fixture
def granted(tenant: Tenant) -> Tenant:
    tenant.allowed_env = EXAMPLE_ENV
    tenant.save()
    return tenant


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_is_valid(granted: Tenant, viewer_key: IssuedKey, example: Path) -> None:
    response = post_text(viewer_key, example.read_text())
    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": [], "warnings": []}


BROKEN = """{
  "name": "broken",
  "start_node": "input",
  "nodes": [
    {"id": "input", "type": "input"},
    {"id": "writer", "type": "llm", "metadata": {"source": "gpt", "prompt": "{{ user_input"}}
  ],
  "edges": [{"from": "input", "to": "writter"}],
  "sources": [{"id": "gpt", "kind": "openai",
               "config": {"model_name": "gpt-4o-mini", "api_key": "sk-live-123"}}]
}"""


def test_it_reports_every_problem_with_its_line_and_column(viewer_key: IssuedKey) -> None:
    body = post_text(viewer_key, BROKEN).json()
    assert body["valid"] is False
    found = {(e["type"], e["path"], e["node_id"]): e for e in body["errors"]}
    lines = BROKEN.splitlines()

    def text_at(error: dict) -> str:
        return lines[error["line"] - 1][error["column"] - 1 :]

    assert text_at(found["missing_node", "/edges/0/to", "input"]).startswith('"writter"')
    assert text_at(found["invalid_template", "/nodes/1/metadata/prompt", "writer"]).startswith(
        '"{{ user_input"'
    )
    assert text_at(found["literal_secret", "/sources/0/config/api_key", None]).startswith(
        '"sk-live-123"'
    )
    secret_error = next(e for e in body["errors"] if e["type"] == "literal_secret")
    assert "sk-live-123" not in secret_error["message"]  # the value is never echoed
    assert "api_key_env" in secret_error["message"]


def _spec_naming(env_name: str) -> dict:
    return {
        "name": "grants",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "w", "type": "llm", "metadata": {"source": "gpt", "prompt": "{{ user_input }}"}},
        ],
        "edges": [{"from": "input", "to": "w"}],
        "sources": [
            {"id": "gpt", "kind": "openai", "config": {"model_name": "m", "api_key_env": env_name}}
        ],
    }


def _types(key: IssuedKey, spec: dict) -> list[str]:
    response = client_for(key).post(URL, spec, format="json")
    return [e["type"] for e in response.json()["errors"]]


def test_a_tenant_may_name_only_the_variables_it_was_granted(tenant, viewer_key) -> None:
    tenant.allowed_env = ["AGENTFLOW_T_ACME_*", "DJANGO_SECRET_KEY"]
    tenant.save()
    assert _types(viewer_key, _spec_naming("AGENTFLOW_T_ACME_OPENAI")) == []
    assert _types(viewer_key, _spec_naming("AGENTFLOW_T_GLOBEX_OPENAI")) == ["forbidden_secret_ref"]
    assert _types(viewer_key, _spec_naming("OPENAI_API_KEY")) == ["forbidden_secret_ref"]
    # The platform's own secrets stay out of reach even when a grant names them.
    assert _types(viewer_key, _spec_naming("DJANGO_SECRET_KEY")) == ["forbidden_secret_ref"]
    assert _types(viewer_key, _spec_naming("DATABASE_URL")) == ["forbidden_secret_ref"]


@override_settings(AGENTFLOW_ALLOWED_ENV=["OPENAI_API_KEY"])
def test_the_operator_can_grant_a_variable_to_every_tenant(viewer_key: IssuedKey) -> None:
    assert _types(viewer_key, _spec_naming("OPENAI_API_KEY")) == []


def test_one_node_can_be_validated_alone(viewer_key: IssuedKey) -> None:
    spec = json.loads(BROKEN)
    text = json.dumps({"node": "writer", "spec": spec}, indent=1)
    body = post_text(viewer_key, text).json()
    assert {e["node_id"] for e in body["errors"]} == {"writer"}
    error = next(e for e in body["errors"] if e["type"] == "invalid_template")
    lines = text.splitlines()
    assert '"prompt"' in lines[error["line"] - 1]


def test_a_body_that_is_not_json_is_a_400(viewer_key: IssuedKey) -> None:
    response = post_text(viewer_key, "name: not json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "not JSON" in response.json()["detail"]


@pytest.mark.parametrize("body", ["[]", "42", '"spec"', "null", '{"spec": 3}', "{}"])
def test_a_json_body_of_the_wrong_shape_is_a_200_with_errors(viewer_key, body: str) -> None:
    response = post_text(viewer_key, body)
    assert response.status_code == 200
    assert response.json()["valid"] is False
    assert response.json()["errors"][0]["type"] == "schema"


def test_deep_nesting_is_refused_quickly(viewer_key: IssuedKey) -> None:
    deep = '{"name": "x", "start_node": "a", "nodes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    start = time.perf_counter()
    response = post_text(viewer_key, deep)
    # Refused, not parsed: a recursive parse of 100,000 levels would crash or take minutes.
    assert time.perf_counter() - start < 20
    assert response.status_code == 200
    assert response.json()["valid"] is False


@pytest.mark.parametrize("size", [1_200_000, 5_000_000])
def test_an_oversized_spec_is_spec_too_large(viewer_key: IssuedKey, size: int) -> None:
    spec = _spec_naming("X")
    spec["description"] = "x" * size
    response = post_text(viewer_key, json.dumps(spec))
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert [e["type"] for e in errors] == ["spec_too_large"]
    assert "1,048,576" in errors[0]["message"]


def test_too_many_nodes_is_spec_too_large(viewer_key: IssuedKey) -> None:
    spec = _spec_naming("X")
    spec["nodes"] += [{"id": f"n{i}", "type": "input"} for i in range(1001)]
    types = _types(viewer_key, spec)
    assert types == ["spec_too_large"]


def test_validation_needs_a_key(api) -> None:
    assert api.post(URL, {}, format="json").status_code == 401


def test_the_workflow_spec_json_schema_is_published(viewer_key: IssuedKey) -> None:
    schema = client_for(viewer_key).get("/api/v1/schema/workflow-spec").json()
    assert schema["type"] == "object"
    assert {"name", "start_node", "nodes"} <= set(schema["required"])
    assert "edges" in schema["properties"]


def test_max_steps_over_the_operators_ceiling_is_refused(viewer_key: IssuedKey, settings) -> None:
    settings.AGENTFLOW_MAX_STEPS = 50
    spec = _spec_naming("X")
    spec["limits"] = {"max_steps": 1_000_000_000}
    response = client_for(viewer_key).post(URL, spec, format="json").json()
    errors = [(e["type"], e["path"]) for e in response["errors"]]
    assert ("schema", "/limits/max_steps") in errors
    spec["limits"] = {"max_steps": 50}
    assert "/limits/max_steps" not in str(
        client_for(viewer_key).post(URL, spec, format="json").json()
    )
