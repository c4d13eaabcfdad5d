"""The client is checked against the OpenAPI document a live server serves: every route it
calls exists with that method, every parameter, header and body field it sends is declared,
and every field its models read is in the schemas of what that route answers. A server change
that would break the client fails here."""

from dataclasses import fields
from typing import Any

import httpx2
import pytest
from agentflow_client import models
from agentflow_client.routes import EVENTS, FREE_FORM, ROUTES, Route

from tests.conftest import IssuedKey
from tests.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
COMPONENTS = "#/components/schemas/"
MODELS = [
    m
    for m in vars(models).values()
    if isinstance(m, type) and issubclass(m, models.Model) and m is not models.Model
]
DECLARED = [m for m in MODELS if m.SCHEMAS]
"""Models read from a declared schema; the others from an answer the server leaves free-form."""


@pytest.fixture
def doc(server: Stack, key: IssuedKey) -> dict[str, Any]:
    served = httpx2.get(
        f"{server.url}/api/schema/",
        headers={"Accept": "application/vnd.oai.openapi+json", "X-API-Key": key.secret},
        timeout=60,
    )
    assert served.status_code == 200, served.text[:500]
    return dict(served.json())


def _component(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    return dict(doc["components"]["schemas"][ref.removeprefix(COMPONENTS)])


def _refs(doc: dict[str, Any], node: Any, seen: set[str]) -> set[str]:
    """Every component reachable from `node`."""
    if isinstance(node, list):
        return set().union(*(_refs(doc, item, seen) for item in node))
    if not isinstance(node, dict):
        return set()
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in seen:
        seen.add(ref)
        _refs(doc, _component(doc, ref), seen)
    for value in node.values():
        _refs(doc, value, seen)
    return {ref.removeprefix(COMPONENTS) for ref in seen}


def _properties(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """Property names of a schema, through $ref, allOf, anyOf and oneOf."""
    if "$ref" in schema:
        return _properties(doc, _component(doc, schema["$ref"]))
    found = set(schema.get("properties", {}))
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            found |= _properties(doc, part)
    return found


def _operation(doc: dict[str, Any], route: Route) -> dict[str, Any]:
    assert route.path in doc["paths"], f"{route.path} is not in the OpenAPI document"
    operations = doc["paths"][route.path]
    assert route.method.lower() in operations, f"{route.method} {route.path} is not declared"
    return dict(operations[route.method.lower()])


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_each_route_the_client_calls_is_declared_with_what_it_sends(
    doc: dict[str, Any], route: Route
) -> None:
    operation = _operation(doc, route)
    declared = {p["name"] for p in operation.get("parameters", [])}
    assert set(route.params) <= declared, set(route.params) - declared
    if route.body:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        accepted = _properties(doc, schema)
        assert set(route.body) <= accepted, set(route.body) - accepted
    answers = {c: r for c, r in operation["responses"].items() if c.startswith("2")}
    if route.reads is not None and route.reads.SCHEMAS:
        reachable = _refs(doc, answers, set())
        assert set(route.reads.SCHEMAS) & reachable, (route.reads.SCHEMAS, reachable)
    if route in FREE_FORM or (route.reads is not None and not route.reads.SCHEMAS):
        assert route in FREE_FORM, f"{route.path}: a model with no schema, from a declared one"
        (answer,) = answers.values()
        schema = answer["content"]["application/json"]["schema"]
        assert schema.get("type") == "object" and not schema.get("properties"), schema
    if route is EVENTS:
        assert "text/event-stream" in operation["responses"]["200"]["content"]


@pytest.mark.parametrize("model", DECLARED, ids=lambda m: m.__name__)
def test_each_field_a_model_reads_is_in_its_schemas(
    doc: dict[str, Any], model: type[models.Model]
) -> None:
    declared: set[str] = set()
    for name in model.SCHEMAS:
        declared |= _properties(doc, _component(doc, COMPONENTS + name))
    if len(model.SCHEMAS) > 1 and model is not models.Run:
        # A summary reads only what every one of its schemas has.
        declared = set.intersection(
            *(_properties(doc, _component(doc, COMPONENTS + n)) for n in model.SCHEMAS)
        )
    assert model.read_fields() <= declared, model.read_fields() - declared


def test_a_free_form_answer_is_read_through_declared_models() -> None:
    # An import answers {workflow, format, report}, declared only as an object: its workflow
    # is read as WorkflowDetail, the rest as plain JSON.
    assert [m for m in MODELS if not m.SCHEMAS] == [models.Imported]
    assert models.NESTED_ONE[("Imported", "workflow")] is models.Workflow
    assert models.Imported.read_fields() == {"workflow", "format", "report"}


def test_every_model_is_checked() -> None:
    assert len(MODELS) == 14  # a new model is found, and so checked, without being listed
    assert {f.name for f in fields(models.Event)} == {"id", "event", "data"}
