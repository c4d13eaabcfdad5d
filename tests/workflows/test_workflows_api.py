"""Stored workflows as a user sees them: save, edit, version, run a pinned version, delete."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from executions.models import Execution
from tenants.models import AuditEvent, Tenant
from tests.conftest import IssuedKey, client_for
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db
URL = "/api/v1/workflows"


def greeter(template: str = "v1: {{ user_input }}", name: str = "greeter") -> dict[str, Any]:
    """input → aggregator(template): runs with no provider; the template tells versions apart."""
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "answer",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": template},
            },
        ],
        "edges": [{"from": "input", "to": "answer"}],
    }


def create(key: IssuedKey, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client_for(key).post(URL, {"spec": spec or greeter()}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def error_types(response: Any) -> list[str]:
    return [e["type"] for e in response.json()["errors"]]


def run(key: IssuedKey, workflow_id: str, **body: Any):  # type: ignore[no-untyped-def,unused-ignore]
    body.setdefault("initial_state", {"user_input": "hi"})
    return client_for(key).post(f"{URL}/{workflow_id}/execute", body, format="json")


# --- create -------------------------------------------------------------------------------------


def test_it_stores_a_valid_workflow_as_version_1(developer_key: IssuedKey) -> None:
    response = client_for(developer_key).post(URL, {"spec": greeter()}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("wf_")
    assert response["Location"] == f"/api/v1/workflows/{body['id']}"
    assert body["name"] == "greeter"
    assert body["version"] == 1
    assert body["node_count"] == 2
    assert body["status"] == "active"
    assert body["created_by"] == f"key:{developer_key.prefix}"
    assert body["created_at"] and body["updated_at"]
    assert body["spec"]["nodes"][1]["metadata"]["template"] == "v1: {{ user_input }}"
    fetched = client_for(developer_key).get(response["Location"])
    assert fetched.status_code == 200
    assert fetched.json()["spec"] == body["spec"]


BROKEN = """{"spec": {
  "name": "broken",
  "start_node": "input",
  "nodes": [
    {"id": "input", "type": "input"},
    {"id": "answer", "type": "aggregator",
     "metadata": {"strategy": "template", "template": "{{ user_input"}}
  ],
  "edges": [{"from": "input", "to": "answr"}]
}}"""


def test_it_refuses_an_invalid_spec_with_every_problem_located_in_the_body(
    developer_key: IssuedKey,
) -> None:
    response = client_for(developer_key).post(URL, data=BROKEN, content_type="application/json")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    found = {(e["type"], e["path"]): e for e in errors}
    assert set(found) >= {
        ("missing_node", "/edges/0/to"),
        ("invalid_template", "/nodes/1/metadata/template"),
    }
    lines = BROKEN.splitlines()

    def text_at(error: dict[str, Any]) -> str:
        return lines[error["line"] - 1][error["column"] - 1 :]

    assert text_at(found["missing_node", "/edges/0/to"]).startswith('"answr"')
    assert text_at(found["invalid_template", "/nodes/1/metadata/template"]).startswith(
        '"{{ user_input"'
    )
    assert found["invalid_template", "/nodes/1/metadata/template"]["node_id"] == "answer"
    assert not Workflow.objects.exists()
    assert not WorkflowVersion.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="workflow.").exists()


def test_it_refuses_a_body_without_a_spec_object_with_a_400_naming_the_field(
    developer_key: IssuedKey,
) -> None:
    response = client_for(developer_key).post(URL, {"spec": "nope"}, format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["spec"]
    response = client_for(developer_key).post(URL, {}, format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["spec"]


@pytest.mark.parametrize("size", [1024 * 1024 + 10, 3 * 1024 * 1024], ids=["over", "far-over"])
def test_it_refuses_a_spec_over_the_size_limit_as_spec_too_large(
    developer_key: IssuedKey, size: int
) -> None:
    spec = {**greeter(), "description": "a" * size}
    client = client_for(developer_key)
    response = client.post(URL, {"spec": spec}, format="json")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert error_types(response) == ["spec_too_large"]
    assert not Workflow.objects.exists()
    created = create(developer_key)
    response = client.put(f"{URL}/{created['id']}", {"spec": spec}, format="json")
    assert response.status_code == 422
    assert error_types(response) == ["spec_too_large"]


# --- versions -----------------------------------------------------------------------------------


def test_a_workflow_edited_twice_shows_three_versions_newest_first(
    developer_key: IssuedKey, admin_key: IssuedKey
) -> None:
    created = create(developer_key)
    url = f"{URL}/{created['id']}"
    put = client_for(admin_key).put(url, {"spec": greeter("v2: {{ user_input }}")}, format="json")
    assert put.status_code == 200, put.json()
    assert put.json()["version"] == 2
    assert put.json()["updated_by"] == f"key:{admin_key.prefix}"
    patch = client_for(developer_key).patch(
        url, {"spec": {"description": "now with a description"}}, format="json"
    )
    assert patch.status_code == 200, patch.json()
    assert patch.json()["version"] == 3
    assert patch.json()["description"] == "now with a description"
    assert patch.json()["spec"]["nodes"][1]["metadata"]["template"] == "v2: {{ user_input }}"

    versions = client_for(developer_key).get(f"{url}/versions")
    assert versions.status_code == 200
    rows = versions.json()["results"]
    assert versions.json()["count"] == 3
    assert [v["version"] for v in rows] == [3, 2, 1]
    assert [v["created_by"] for v in rows] == [
        f"key:{developer_key.prefix}",
        f"key:{admin_key.prefix}",
        f"key:{developer_key.prefix}",
    ]
    assert all(v["created_at"] for v in rows)
    assert rows[0]["created_at"] >= rows[1]["created_at"] >= rows[2]["created_at"]
    assert rows[2]["spec"]["nodes"][1]["metadata"]["template"] == "v1: {{ user_input }}"
    assert rows[0]["spec"]["description"] == "now with a description"
    assert client_for(developer_key).get(url).json()["version"] == 3


def test_saving_an_unchanged_spec_adds_no_version(developer_key: IssuedKey) -> None:
    created = create(developer_key)
    url = f"{URL}/{created['id']}"
    again = client_for(developer_key).put(url, {"spec": greeter()}, format="json")
    assert again.status_code == 200
    assert again.json()["version"] == 1
    assert client_for(developer_key).get(f"{url}/versions").json()["count"] == 1
    assert not AuditEvent.objects.filter(action="workflow.update").exists()


def test_a_patch_that_removes_a_key_with_null_saves_a_version_without_it(
    developer_key: IssuedKey,
) -> None:
    created = create(developer_key, {**greeter(), "description": "temporary"})
    url = f"{URL}/{created['id']}"
    patched = client_for(developer_key).patch(url, {"spec": {"description": None}}, format="json")
    assert patched.status_code == 200
    assert patched.json()["version"] == 2
    assert "description" not in patched.json()["spec"]
    assert patched.json()["description"] == ""


def test_it_refuses_an_invalid_edit_and_keeps_the_workflow_as_it_was(
    developer_key: IssuedKey,
) -> None:
    created = create(developer_key)
    url = f"{URL}/{created['id']}"
    patch = {"spec": {"start_node": "nowhere"}}
    response = client_for(developer_key).patch(url, patch, format="json")
    assert response.status_code == 422
    assert "missing_node" in {e["type"] for e in response.json()["errors"]}
    broken = greeter("{{ oops")
    response = client_for(developer_key).put(url, {"spec": broken}, format="json")
    assert response.status_code == 422
    assert [e["type"] for e in response.json()["errors"]] == ["invalid_template"]
    current = client_for(developer_key).get(url).json()
    assert current["version"] == 1
    assert current["spec"]["start_node"] == "input"
    assert client_for(developer_key).get(f"{url}/versions").json()["count"] == 1


def test_a_put_locates_its_errors_in_the_request_body(developer_key: IssuedKey) -> None:
    created = create(developer_key)
    response = client_for(developer_key).put(
        f"{URL}/{created['id']}", data=BROKEN, content_type="application/json"
    )
    assert response.status_code == 422
    error = next(e for e in response.json()["errors"] if e["type"] == "missing_node")
    line = BROKEN.splitlines()[error["line"] - 1]
    assert line[error["column"] - 1 :].startswith('"answr"')


# --- running versions ---------------------------------------------------------------------------


def test_an_execution_pinned_to_version_1_runs_version_1(developer_key: IssuedKey) -> None:
    created = create(developer_key)
    url = f"{URL}/{created['id']}"
    client_for(developer_key).put(url, {"spec": greeter("v2: {{ user_input }}")}, format="json")
    client_for(developer_key).put(url, {"spec": greeter("v3: {{ user_input }}")}, format="json")

    pinned = run(developer_key, created["id"], version=1)
    assert pinned.status_code == 200, pinned.json()
    assert pinned.json()["status"] == "success"
    assert pinned.json()["final_state"]["final_output"] == "v1: hi"
    current = run(developer_key, created["id"])
    assert current.json()["final_state"]["final_output"] == "v3: hi"

    first = Execution.objects.get(pk=pinned.json()["execution_id"])
    assert (first.workflow_id, first.workflow_version) == (created["id"], 1)
    latest = Execution.objects.get(pk=current.json()["execution_id"])
    assert (latest.workflow_id, latest.workflow_version) == (created["id"], 3)
    trace = client_for(developer_key).get(f"/api/v1/executions/{first.id}").json()
    assert trace["workflow"] == created["id"]
    assert trace["workflow_version"] == 1


def test_it_refuses_to_run_a_version_that_does_not_exist_naming_version(
    executor_key: IssuedKey, developer_key: IssuedKey
) -> None:
    created = create(developer_key)
    response = run(executor_key, created["id"], version=7)
    assert response.status_code == 422  # well-formed, but no such version (the fuzzer: not 400)
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["version"]
    assert not Execution.objects.exists()


def test_it_answers_404_for_running_an_unknown_workflow(executor_key: IssuedKey) -> None:
    assert run(executor_key, "wf_0123456789abcdef0123").status_code == 404


# --- delete -------------------------------------------------------------------------------------


def test_a_deleted_workflow_is_gone_from_reads_but_listed_under_status_deleted(
    developer_key: IssuedKey,
) -> None:
    keep = create(developer_key, greeter(name="keep"))
    gone = create(developer_key, greeter(name="gone"))
    client = client_for(developer_key)
    response = client.delete(f"{URL}/{gone['id']}")
    assert response.status_code == 204
    assert client.get(f"{URL}/{gone['id']}").status_code == 404
    assert client.get(f"{URL}/{gone['id']}/versions").status_code == 404
    assert run(developer_key, gone["id"]).status_code == 404
    assert client.delete(f"{URL}/{gone['id']}").status_code == 404
    listed = client.get(URL).json()
    assert [w["id"] for w in listed["results"]] == [keep["id"]]
    deleted = client.get(URL, {"status": "deleted"}).json()
    assert [w["id"] for w in deleted["results"]] == [gone["id"]]
    assert deleted["results"][0]["status"] == "deleted"
    row = Workflow.objects.get(pk=gone["id"])  # soft: the row and its versions stay
    assert row.deleted_by == f"key:{developer_key.prefix}"
    assert row.versions.count() == 1


@pytest.mark.parametrize("status", ["queued", "running"])
def test_it_refuses_to_delete_a_workflow_while_an_execution_is_active(
    developer_key: IssuedKey, tenant: Tenant, status: str
) -> None:
    created = create(developer_key)
    workflow = Workflow.objects.get(pk=created["id"])
    Execution.objects.create(
        tenant=tenant,
        workflow=workflow,
        workflow_version=1,
        status=status,
        spec=workflow.spec,
        spec_digest="",
        workflow_name=workflow.name,
    )
    response = client_for(developer_key).delete(f"{URL}/{created['id']}")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert created["id"] in response.json()["detail"]
    assert client_for(developer_key).get(f"{URL}/{created['id']}").status_code == 200
    assert not AuditEvent.objects.filter(action="workflow.delete").exists()


def test_a_finished_execution_does_not_block_delete(developer_key: IssuedKey) -> None:
    created = create(developer_key)
    assert run(developer_key, created["id"]).json()["status"] == "success"
    assert client_for(developer_key).delete(f"{URL}/{created['id']}").status_code == 204


# --- lists --------------------------------------------------------------------------------------


def test_the_list_is_paginated_newest_first_with_node_count_and_dates(
    developer_key: IssuedKey,
) -> None:
    ids = [create(developer_key, greeter(name=f"flow-{i}"))["id"] for i in range(3)]
    client = client_for(developer_key)
    first = client.get(URL, {"page_size": 2}).json()
    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 3
    assert first["previous"] is None
    assert [w["id"] for w in first["results"]] == ids[::-1][:2]
    row = first["results"][0]
    assert row["node_count"] == 2
    assert row["created_at"] and row["updated_at"]
    assert "spec" not in row
    second = client.get(first["next"]).json()
    assert [w["id"] for w in second["results"]] == [ids[0]]
    assert second["next"] is None
    assert second["previous"]


def test_the_list_filters_by_part_of_the_name(developer_key: IssuedKey) -> None:
    support = create(developer_key, greeter(name="Support-Desk"))
    create(developer_key, greeter(name="billing"))
    listed = client_for(developer_key).get(URL, {"name": "support"}).json()
    assert [w["id"] for w in listed["results"]] == [support["id"]]


def test_the_list_filters_by_creation_time(developer_key: IssuedKey) -> None:
    old = create(developer_key, greeter(name="old"))
    new = create(developer_key, greeter(name="new"))
    a_week_ago = timezone.now() - timedelta(days=7)
    Workflow.objects.filter(pk=old["id"]).update(created_at=a_week_ago)
    cut = (a_week_ago + timedelta(days=1)).isoformat()
    client = client_for(developer_key)
    after = client.get(URL, {"created_after": cut}).json()
    assert [w["id"] for w in after["results"]] == [new["id"]]
    before = client.get(URL, {"created_before": cut}).json()
    assert [w["id"] for w in before["results"]] == [old["id"]]


def test_a_bad_filter_value_is_a_400_naming_it(developer_key: IssuedKey) -> None:
    response = client_for(developer_key).get(URL, {"created_after": "last tuesday"})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["created_after"]


# --- tenants and roles --------------------------------------------------------------------------


def test_another_tenants_workflow_is_a_404_everywhere(
    developer_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    created = create(developer_key)
    other = client_for(other_admin_key)
    url = f"{URL}/{created['id']}"
    assert other.get(url).status_code == 404
    assert other.get(f"{url}/versions").status_code == 404
    assert other.put(url, {"spec": greeter("x")}, format="json").status_code == 404
    assert other.patch(url, {"spec": {"description": "x"}}, format="json").status_code == 404
    assert other.delete(url).status_code == 404
    assert run(other_admin_key, created["id"]).status_code == 404
    assert other.get(URL).json()["count"] == 0
    assert Workflow.objects.get(pk=created["id"]).deleted_at is None


def test_a_viewer_reads_workflows_but_may_not_change_or_run_them(
    developer_key: IssuedKey, viewer_key: IssuedKey
) -> None:
    created = create(developer_key)
    viewer = client_for(viewer_key)
    url = f"{URL}/{created['id']}"
    assert viewer.get(URL).status_code == 200
    assert viewer.get(url).status_code == 200
    assert viewer.get(f"{url}/versions").status_code == 200
    assert viewer.get(f"{url}/executions").status_code == 200
    refused = [
        viewer.post(URL, {"spec": greeter()}, format="json"),
        viewer.put(url, {"spec": greeter("x")}, format="json"),
        viewer.patch(url, {"spec": {"description": "x"}}, format="json"),
        viewer.delete(url),
        run(viewer_key, created["id"]),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert refused[0].json()["detail"] == "This needs the 'developer' role; your key has 'viewer'."
    assert Workflow.objects.count() == 1
    assert Workflow.objects.get().version == 1
    assert not Execution.objects.exists()


def test_an_executor_runs_workflows_but_may_not_create_or_edit_them(
    developer_key: IssuedKey, executor_key: IssuedKey
) -> None:
    created = create(developer_key)
    executor = client_for(executor_key)
    url = f"{URL}/{created['id']}"
    assert executor.post(URL, {"spec": greeter()}, format="json").status_code == 403
    assert executor.put(url, {"spec": greeter("x")}, format="json").status_code == 403
    assert executor.delete(url).status_code == 403
    ran = run(executor_key, created["id"])
    assert ran.status_code == 200
    assert ran.json()["final_state"]["final_output"] == "v1: hi"


def test_a_missing_key_is_a_401(api: APIClient) -> None:
    response = api.get(URL)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    body = json.loads(response.content)
    assert body["status"] == 401
