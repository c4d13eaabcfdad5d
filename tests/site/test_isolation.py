"""Every tenant in its own room, checked on every route the OpenAPI document lists.

The routes come from /api/schema/, so a new route is covered without anyone remembering to: a
path parameter this file cannot fill fails the test and asks for an entry in IDS_OF.
"""

import re
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from executions.models import Execution
from schedules.models import Schedule
from sources.services import source_create
from tenants.models import Tenant
from tests.conftest import IssuedKey, client_for
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db
METHODS = ("get", "post", "put", "patch", "delete")
PUBLIC = {"/api/v1/health"}
SPEC = {
    "name": "theirs",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {"id": "say", "type": "aggregator", "metadata": {"strategy": "template", "template": "x"}},
    ],
    "edges": [{"from": "input", "to": "say"}],
}


@pytest.fixture
def theirs(other_tenant: Tenant, other_admin_key: IssuedKey) -> dict[str, str]:
    """One of everything, owned by the other tenant; path parameter name → its value."""
    other_tenant.allowed_env = ["THEIR_KEY"]
    other_tenant.save()
    workflow = workflow_create(tenant=other_tenant, spec=SPEC, actor="key:theirs")
    source = source_create(
        tenant=other_tenant,
        name="their-gpt",
        kind="openai",
        config={"model_name": "m", "api_key_env": "THEIR_KEY"},
        description="",
        actor="key:theirs",
    )
    execution = Execution.objects.create(
        tenant=other_tenant, workflow=workflow, spec=SPEC, spec_digest="", workflow_name="theirs"
    )
    schedule = Schedule.objects.create(tenant=other_tenant, workflow=workflow, cron="@hourly")
    return {
        "workflow_id": workflow.id,
        "schedule_id": schedule.id,
        "source_id": source.id,
        "execution_id": execution.id,
        "prefix": other_admin_key.prefix,
        "name": "0123456789abcdef.png",
        "version": "1",
        "to_version": "1",
    }


def routes(api: APIClient) -> list[tuple[str, str]]:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    found = [
        (path, method)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in METHODS and path not in PUBLIC
    ]
    assert len(found) > 20, "the schema lists fewer routes than the API has"
    return found


def fill(path: str, ids: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        assert name in ids, f"path parameter {{{name}}} in {path}: add it to the fixture"
        return ids[name]

    return re.sub(r"\{(\w+)\}", value, path)


def call(client: APIClient, method: str, url: str) -> Any:
    send: Callable[..., Any] = getattr(client, method)
    return send(url, {}, format="json") if method != "get" else send(url)


def test_every_route_with_another_tenants_ids_is_a_404(api, admin_key, theirs) -> None:
    mine = client_for(admin_key)
    checked = 0
    for path, method in routes(api):
        if "{" not in path:
            continue
        response = call(mine, method, fill(path, theirs))
        assert response.status_code == 404, (method.upper(), path, response.status_code)
        assert response["Content-Type"] == "application/problem+json"
        checked += 1
    assert checked >= 14


def test_a_viewer_gets_403_on_every_write_route(api, viewer_key, theirs) -> None:
    viewer = client_for(viewer_key)
    for path, method in routes(api):
        if method == "get" or path in ("/api/v1/workflows/validate", "/api/v1/workflows/graph"):
            continue  # reads are a viewer's; validating or drawing a spec changes nothing
        response = call(viewer, method, fill(path, theirs))
        assert response.status_code == 403, (method.upper(), path, response.status_code)


def test_every_route_needs_a_key(api, theirs) -> None:
    for path, method in routes(api):
        response = call(api, method, fill(path, theirs))
        assert response.status_code == 401, (method.upper(), path, response.status_code)
        assert "WWW-Authenticate" in response


def test_no_list_shows_another_tenants_objects(api, admin_key, theirs) -> None:
    mine = client_for(admin_key)
    for path, method in routes(api):
        if method != "get" or "{" in path:
            continue
        body = mine.get(path).content.decode()
        for value in (
            theirs["workflow_id"],
            theirs["source_id"],
            theirs["execution_id"],
            theirs["prefix"],
            "their-gpt",
        ):
            assert value not in body, (path, value)


def test_a_filter_naming_another_tenants_workflow_is_a_404(admin_key, theirs) -> None:
    mine = client_for(admin_key)
    response = mine.get(f"/api/v1/executions?workflow={theirs['workflow_id']}")
    assert response.status_code == 404


def test_a_spec_cannot_reach_another_tenants_stored_source(admin_key, theirs) -> None:
    spec: dict[str, Any] = {
        "name": "borrow",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "w", "type": "llm", "metadata": {"source": "their-gpt", "prompt": "hi"}},
        ],
        "edges": [{"from": "input", "to": "w"}],
    }
    for ref in ("their-gpt", theirs["source_id"]):
        spec["nodes"][1]["metadata"]["source"] = ref
        body = client_for(admin_key).post("/api/v1/workflows/validate", spec, format="json").json()
        assert [e["type"] for e in body["errors"]] == ["unknown_source"], ref


def test_an_import_naming_another_tenants_source_or_workflow_does_not_reach_it(
    admin_key: IssuedKey, theirs: dict[str, str]
) -> None:
    spec = {
        **SPEC,
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "w", "type": "llm", "metadata": {"source": theirs["source_id"], "prompt": "x"}},
        ],
        "edges": [{"from": "input", "to": "w"}],
    }
    document = {
        "format": "agentflow.workflow-export",
        "format_version": 1,
        "versions": [{"version": 1, "spec": spec}],
        "sources": [],
    }
    mine = client_for(admin_key)
    response = mine.post("/api/v1/workflows/import", document, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "unknown_source"
    exported = mine.get(f"/api/v1/workflows/{theirs['workflow_id']}/export")
    assert exported.status_code == 404
