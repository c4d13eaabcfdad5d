"""The OpenAPI document tells the whole truth: every error an operation can answer (as
problem+json), 202 for async runs, the WorkflowSpec schema wherever a spec goes in or out, the
SSE stream, the parameters' bounds, one tag per resource and a summary for each operation."""

import io
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from agentflow_site.pagination import MAX_PAGE_SIZE
from runtime.source_configs import SOURCE_CONFIGS

PROBLEM_REF = "#/components/schemas/Problem"
SPEC_REF = "#/components/schemas/WorkflowSpec"
METHODS = {"get", "post", "put", "patch", "delete"}
PREVIEW = "/api/v1/workflows/graph"  # draws a spec, changes nothing: any role may


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    ]


def op(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return doc["paths"][path][method]


def param(operation: dict[str, Any], name: str) -> dict[str, Any]:
    found = [p for p in operation.get("parameters", []) if p["name"] == name]
    assert found, f"{name} is not a parameter"
    return found[0]


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_the_document_validates_without_warnings() -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=err)
    assert "Warning" not in err.getvalue()


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_the_problem_schema_has_the_handlers_shape(doc: dict[str, Any]) -> None:
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])
    assert set(problem["required"]) >= {"type", "title", "status", "detail"}


def test_every_error_is_problem_json(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                content = response["content"]
                assert list(content) == ["application/problem+json"], (method, path, code)
                assert content["application/problem+json"]["schema"]["$ref"] == PROBLEM_REF


def test_every_api_operation_declares_auth_and_throttling_errors(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        if path.startswith("/api/v1/"):
            assert {"401", "429"} <= set(operation["responses"]), (method, path)
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
            assert "Retry-After" in operation["responses"]["429"]["headers"]


def test_errors_follow_the_operation(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        codes = set(operation["responses"])
        if "requestBody" in operation and method != "get":
            assert {"400", "413", "415"} <= codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
        if method != "get" and path not in ("/api/v1/workflows/validate", PREVIEW):
            assert "403" in codes, (method, path)  # writes need more than a viewer key
    # admin-only reads
    for path in ("/api/v1/keys", "/api/v1/audit", "/api/v1/budget"):
        assert "403" in op(doc, "get", path)["responses"]
    assert "403" not in op(doc, "get", "/api/v1/workflows")["responses"]  # any role reads
    # conflicts, where the view can answer them
    assert "409" in op(doc, "delete", "/api/v1/workflows/{workflow_id}")["responses"]
    assert "409" in op(doc, "delete", "/api/v1/sources/{source_id}")["responses"]
    assert "409" in op(doc, "post", "/api/v1/executions/{execution_id}/cancel")["responses"]
    assert "409" not in op(doc, "get", "/api/v1/workflows/{workflow_id}")["responses"]
    # an invalid spec or source
    for method, path in [
        ("post", "/api/v1/workflows"),
        ("put", "/api/v1/workflows/{workflow_id}"),
        ("post", "/api/v1/workflows/execute"),
        ("post", "/api/v1/workflows/{workflow_id}/execute"),
        ("post", "/api/v1/sources"),
    ]:
        assert "422" in op(doc, method, path)["responses"], (method, path)
    # a cursor that does not decode is a 404
    assert "404" in op(doc, "get", "/api/v1/executions")["responses"]


def test_async_execute_is_a_202_with_a_location(doc: dict[str, Any]) -> None:
    for path in ("/api/v1/workflows/execute", "/api/v1/workflows/{workflow_id}/execute"):
        operation = op(doc, "post", path)
        accepted = operation["responses"]["202"]
        assert "Location" in accepted["headers"]
        schema = accepted["content"]["application/json"]["schema"]["$ref"]
        body = doc["components"]["schemas"][schema.rsplit("/", 1)[1]]
        assert {"status", "execution_id", "location"} <= set(body["properties"])
        assert param(operation, "Idempotency-Key")["in"] == "header"


def test_the_workflow_spec_is_a_component_wherever_a_spec_goes(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert {"name", "nodes", "start_node"} <= set(schemas["WorkflowSpec"]["properties"])
    assert schemas["WorkflowSpec_Node"]  # its $defs, hoisted
    for name, field in [
        ("WorkflowWriteRequest", "spec"),
        ("WorkflowDetail", "spec"),
        ("WorkflowVersion", "spec"),
        ("ExecuteRequestRequest", "workflow"),
    ]:
        assert SPEC_REF in refs(schemas[name]["properties"][field]), name
    validate = op(doc, "post", "/api/v1/workflows/validate")["requestBody"]
    assert SPEC_REF in refs(validate)


def test_the_events_route_is_a_server_sent_event_stream(doc: dict[str, Any]) -> None:
    operation = op(doc, "get", "/api/v1/executions/{execution_id}/events")
    assert list(operation["responses"]["200"]["content"]) == ["text/event-stream"]
    assert param(operation, "Last-Event-ID")["in"] == "header"
    assert param(operation, "last_event_id")["schema"]["minimum"] == 0


def test_parameters_and_fields_carry_their_bounds(doc: dict[str, Any]) -> None:
    days = param(op(doc, "get", "/api/v1/usage"), "days")["schema"]
    assert (days["minimum"], days["maximum"]) == (1, 90)
    for _path, _method, operation in operations(doc):
        for p in operation.get("parameters", []):
            if p["name"] == "page_size":
                assert (p["schema"]["minimum"], p["schema"]["maximum"]) == (1, MAX_PAGE_SIZE)
    schemas = doc["components"]["schemas"]
    kinds = schemas["KindEnum"]["enum"]
    assert sorted(kinds) == sorted(SOURCE_CONFIGS)
    assert "KindEnum" in str(schemas["SourceWriteRequest"]["properties"]["kind"])
    cost = schemas["BudgetRequest"]["properties"]["daily_cost"]
    assert cost["minimum"] == 0
    assert "-" not in cost["pattern"]


def test_one_tag_per_resource_and_a_summary_each(doc: dict[str, Any]) -> None:
    tags = {t["name"] for t in doc["tags"]}
    assert {"workflows", "executions", "sources", "keys"} <= tags
    for path, method, operation in operations(doc):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in tags
        assert 0 < len(operation["summary"]) <= 60, (method, path)
    assert op(doc, "get", "/api/v1/workflows/{workflow_id}/versions")["tags"] == ["workflows"]
    assert op(doc, "post", "/api/v1/executions/{execution_id}/cancel")["tags"] == ["executions"]
