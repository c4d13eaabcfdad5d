"""Export a workflow and import it elsewhere; import Dify and Flowise exports and run them."""

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from sources.models import Source
from tenants.models import AuditEvent, Tenant
from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeOpenAIServer
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db
API = "/api/v1"
SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "imports"
KEY_ENV = "OPENAI_API_KEY"


def spec(prompt: str, source: str = "gpt") -> dict[str, Any]:
    return {
        "name": "desk",
        "description": "answers",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "writer", "type": "llm", "metadata": {"source": source, "prompt": prompt}},
            {
                "id": "answer",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "A: {{ text_result }}"},
            },
        ],
        "edges": [{"from": "input", "to": "writer"}, {"from": "writer", "to": "answer"}],
    }


@pytest.fixture
def fake_openai(tenant: Tenant, other_tenant: Tenant, openai_server: FakeOpenAIServer, monkeypatch):  # type: ignore[no-untyped-def,unused-ignore]
    for t in (tenant, other_tenant):
        t.allowed_env = [KEY_ENV]
        t.save()
    monkeypatch.setenv(KEY_ENV, "sk-test-openai-0123456789")
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS={"openai": openai_server.base_url}):
        yield openai_server


def counts() -> tuple[int, ...]:
    return (
        Workflow.objects.count(),
        WorkflowVersion.objects.count(),
        Source.objects.count(),
        AuditEvent.objects.count(),
    )


def stored_workflow(key: IssuedKey) -> str:
    client = client_for(key)
    source = {
        "name": "gpt",
        "kind": "openai",
        "config": {"model_name": "gpt-4o-mini", "api_key_env": KEY_ENV},
    }
    assert client.post(f"{API}/sources", source, format="json").status_code == 201
    created = client.post(f"{API}/workflows", {"spec": spec("Hi {{ user_input }}")}, format="json")
    assert created.status_code == 201, created.content
    workflow_id = created.json()["id"]
    second = {"spec": spec("Say hello to {{ user_input }}")}
    assert client.put(f"{API}/workflows/{workflow_id}", second, format="json").status_code == 200
    return str(workflow_id)


def run(key: IssuedKey, workflow_id: str, state: dict[str, Any]) -> dict[str, Any]:
    body = {"initial_state": state}
    response = client_for(key).post(f"{API}/workflows/{workflow_id}/execute", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "success", response.json()
    return dict(response.json()["final_state"])


def export(key: IssuedKey, workflow_id: str) -> dict[str, Any]:
    response = client_for(key).get(f"{API}/workflows/{workflow_id}/export")
    assert response.status_code == 200, response.content
    return dict(response.json())


def import_(key: IssuedKey, body: Any, **extra: Any):  # type: ignore[no-untyped-def,unused-ignore]
    return client_for(key).post(f"{API}/workflows/import", body, format="json", **extra)


def versions(key: IssuedKey, workflow_id: str) -> list[tuple[int, dict[str, Any]]]:
    listed = client_for(key).get(f"{API}/workflows/{workflow_id}/versions").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    return sorted((v["version"], v["spec"]) for v in rows)


def test_an_export_imported_into_another_tenant_runs_the_same(
    fake_openai, admin_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    workflow_id = stored_workflow(admin_key)
    document = export(admin_key, workflow_id)
    assert (document["format"], document["format_version"]) == ("agentflow.workflow-export", 1)
    assert [v["version"] for v in document["versions"]] == [1, 2]
    assert document["sources"][0]["config"] == {"model_name": "gpt-4o-mini", "api_key_env": KEY_ENV}
    imported = import_(other_admin_key, document)
    assert imported.status_code == 201, imported.content
    body = imported.json()
    new_id = body["workflow"]["id"]
    assert body["format"] == "agentflow" and body["report"]["versions"] == 2
    assert len(body["report"]["sources_created"]) == 1
    assert body["workflow"]["spec"] == document["versions"][-1]["spec"]
    assert versions(other_admin_key, new_id) == versions(admin_key, workflow_id)
    state = {"user_input": "Ada"}
    original, copy = run(admin_key, workflow_id, state), run(other_admin_key, new_id, state)
    assert original["final_output"] == copy["final_output"] == "A: echo: Say hello to Ada"
    event = AuditEvent.objects.filter(action="workflow.import").get()
    assert (event.target_id, event.tenant_id) == (new_id, other_admin_key.row.tenant_id)


def test_an_identical_source_is_reused_and_a_different_one_is_a_conflict(
    fake_openai, admin_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    document = export(admin_key, stored_workflow(admin_key))
    again = import_(admin_key, {"document": document, "name": "desk-copy"})
    assert again.status_code == 201, again.content
    assert again.json()["report"]["sources_created"] == []
    assert len(again.json()["report"]["sources_reused"]) == 1
    other = {
        "name": "gpt",
        "kind": "openai",
        "config": {"model_name": "gpt-4o", "api_key_env": KEY_ENV},
    }
    assert (
        client_for(other_admin_key).post(f"{API}/sources", other, format="json").status_code == 201
    )
    before = counts()
    conflict = import_(other_admin_key, document)
    assert conflict.status_code == 409, conflict.content
    assert conflict.json()["errors"][0]["field"] == "sources.0.config"
    assert counts() == before


def test_a_version_that_no_longer_validates_in_the_target_writes_nothing(
    fake_openai, admin_key: IssuedKey, other_admin_key: IssuedKey, other_tenant: Tenant
) -> None:
    document = export(admin_key, stored_workflow(admin_key))
    document["sources"] = []  # the target has no `gpt` source: version 1 names an unknown one
    before = counts()
    refused = import_(other_admin_key, document)
    assert refused.status_code == 422, refused.content
    paths = {e["path"] for e in refused.json()["errors"]}
    assert "/versions/0/spec/nodes/1/metadata/source" in paths
    assert counts() == before
    other_tenant.allowed_env = []
    other_tenant.save()
    forbidden = import_(other_admin_key, export(admin_key, Workflow.objects.get().id))
    assert forbidden.status_code == 422, forbidden.content
    error = forbidden.json()["errors"][0]
    assert error["type"] == "forbidden_secret_ref" and error["path"].startswith("/sources/0/")
    assert counts() == before


def test_a_taken_name_is_a_409_and_another_name_imports(fake_openai, admin_key: IssuedKey) -> None:
    document = export(admin_key, stored_workflow(admin_key))
    before = counts()
    taken = import_(admin_key, document)
    assert taken.status_code == 409
    assert taken.json()["errors"][0]["field"] == "name"
    assert counts() == before
    renamed = import_(admin_key, {"document": document, "name": "desk-2"})
    assert renamed.status_code == 201, renamed.content
    assert renamed.json()["workflow"]["name"] == "desk-2"
    assert renamed.json()["workflow"]["spec"]["name"] == "desk-2"
    by_query = client_for(admin_key).post(
        f"{API}/workflows/import?name=desk-3", document, format="json"
    )
    assert by_query.status_code == 201, by_query.content


def test_another_tenants_workflow_is_not_exported_and_a_viewer_cannot_import(
    fake_openai, admin_key: IssuedKey, other_admin_key: IssuedKey, viewer_key: IssuedKey
) -> None:
    workflow_id = stored_workflow(admin_key)
    assert (
        client_for(other_admin_key).get(f"{API}/workflows/{workflow_id}/export").status_code == 404
    )
    assert client_for(viewer_key).get(f"{API}/workflows/{workflow_id}/export").status_code == 200
    document = export(admin_key, workflow_id)
    before = counts()
    assert import_(viewer_key, {"document": document, "name": "x"}).status_code == 403
    assert counts() == before


def test_bad_documents_are_refused_naming_why(admin_key: IssuedKey) -> None:
    client = client_for(admin_key)
    not_json = client.post(f"{API}/workflows/import", "{nope", content_type="application/json")
    assert not_json.status_code == 400
    not_yaml = client.post(f"{API}/workflows/import", "a: [1", content_type="application/yaml")
    assert not_yaml.status_code == 400
    alias = client.post(
        f"{API}/workflows/import", "a: &x [1]\nb: *x", content_type="application/yaml"
    )
    assert alias.status_code == 400 and "alias" in alias.json()["detail"]
    unknown = import_(admin_key, {"hello": "world"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "format"
    bad_choice = import_(admin_key, {"document": {}, "format": "n8n"})
    assert bad_choice.status_code == 400 and bad_choice.json()["errors"][0]["field"] == "format"
    no_versions = import_(admin_key, {"format": "agentflow.workflow-export", "format_version": 1})
    assert no_versions.status_code == 422
    assert no_versions.json()["errors"][0]["field"] == "versions"
    assert Workflow.objects.count() == 0


def test_the_dify_sample_imports_and_runs_both_branches(fake_openai, admin_key: IssuedKey) -> None:
    text = (SAMPLES / "dify-support-triage.yml").read_text()
    response = client_for(admin_key).post(
        f"{API}/workflows/import?name=triage", text, content_type="application/yaml"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "dify"
    assert body["report"]["not_mapped"] == [
        {
            "id": "1733000000005",
            "kind": "code",
            "reason": "code nodes run arbitrary Python/JavaScript; AgentFlow runs no user code",
        }
    ]
    kinds = {m["kind"] for m in body["report"]["mapped"]}
    assert kinds == {"start", "if-else", "llm", "variable-aggregator", "end"}
    workflow_id = body["workflow"]["id"]
    refund = run(admin_key, workflow_id, {"query": "I want a refund"})
    assert refund["final_output"] == "echo: Billing question: I want a refund"
    other = run(admin_key, workflow_id, {"query": "Where is my parcel?"})
    assert other["final_output"] == "echo: Question: Where is my parcel?"


def test_the_dify_sample_uses_a_stored_source_named_in_source_map(
    fake_openai, admin_key: IssuedKey
) -> None:
    stored_workflow(admin_key)  # stores source `gpt`
    document = (SAMPLES / "dify-support-triage.yml").read_text()
    body = {"document": document, "name": "triage", "source_map": {"openai": "gpt"}}
    response = import_(admin_key, body)
    assert response.status_code == 201, response.content
    spec_ = response.json()["workflow"]["spec"]
    assert not spec_.get("sources")
    assert {n["metadata"].get("source") for n in spec_["nodes"] if n["type"] == "llm"} == {"gpt"}
    workflow_id = response.json()["workflow"]["id"]
    assert run(admin_key, workflow_id, {"query": "x"})["final_output"] == "echo: Question: x"


def test_the_flowise_sample_imports_and_runs(fake_openai, admin_key: IssuedKey) -> None:
    document = json.loads((SAMPLES / "flowise-chatflow.json").read_text())
    response = import_(admin_key, {"document": document, "name": "travel"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "flowise"
    assert [(n["id"], n["kind"]) for n in body["report"]["not_mapped"]] == [
        ("customFunction_0", "customFunction")
    ]
    assert {m["id"] for m in body["report"]["mapped"]} == {
        "llmChain_0",
        "promptTemplate_0",
        "chatOpenAI_0",
    }
    final = run(admin_key, body["workflow"]["id"], {"user_input": "Lisbon"})
    assert final["final_output"] == (
        "echo: You are a helpful travel agent. Suggest one budget trip for: Lisbon"
    )


def test_a_document_with_nothing_runnable_is_a_422_with_the_report(admin_key: IssuedKey) -> None:
    document = {
        "app": {"name": "only-code", "mode": "workflow"},
        "kind": "app",
        "workflow": {
            "graph": {
                "nodes": [
                    {"id": "s", "data": {"type": "start", "variables": []}},
                    {"id": "c", "data": {"type": "code", "code": "x"}},
                ],
                "edges": [{"source": "s", "target": "c"}],
            }
        },
    }
    response = import_(admin_key, document)
    assert response.status_code == 422, response.content
    assert response.json()["report"]["not_mapped"][0]["id"] == "c"
    assert Workflow.objects.count() == 0


def test_the_format_can_be_named_in_the_query(fake_openai, admin_key: IssuedKey) -> None:
    document = json.loads((SAMPLES / "flowise-chatflow.json").read_text())
    client = client_for(admin_key)
    response = client.post(f"{API}/workflows/import?format=flowise", document, format="json")
    assert response.status_code == 201, response.content
    wrong = client.post(f"{API}/workflows/import?format=dify&name=x", document, format="json")
    assert wrong.status_code == 422, wrong.content
    text = client.post(f"{API}/workflows/import", {"document": "a: [1"}, format="json")
    assert text.status_code == 422 and text.json()["errors"][0]["field"] == "document"


@pytest.mark.parametrize("fmt", ["agentflow", "dify", "flowise"])
@pytest.mark.parametrize("document", ["text", 3, [1], None, {"nodes": "x", "edges": 1}])
def test_a_named_format_with_a_document_that_is_not_one_is_a_422(
    admin_key: IssuedKey, fmt: str, document: Any
) -> None:
    response = import_(admin_key, {"document": document, "format": fmt, "name": "n"})
    assert response.status_code in (400, 422), response.content
    assert Workflow.objects.count() == 0


def test_the_flowise_agentflow_v2_sample_imports_and_runs_both_branches(
    fake_openai, admin_key: IssuedKey
) -> None:
    document = json.loads((SAMPLES / "flowise-agentflow-v2.json").read_text())
    response = import_(admin_key, document)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "flowise"
    assert [(n["id"], n["kind"]) for n in body["report"]["not_mapped"]] == [
        ("customFunctionAgentflow_0", "customFunctionAgentflow")
    ]
    workflow_id = body["workflow"]["id"]
    refund = run(admin_key, workflow_id, {"user_input": "a refund please"})
    assert refund["final_output"] == "echo: Refund request: a refund please"
    other = run(admin_key, workflow_id, {"user_input": "hours?"})
    assert other["final_output"] == "echo: Help with: hours?"


def test_a_spec_naming_a_stored_source_by_id_names_the_targets_copy(
    fake_openai, admin_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    workflow_id = stored_workflow(admin_key)
    source_id = Source.objects.get().id
    by_id = {"spec": spec("Hey {{ user_input }}", source=source_id)}
    client_for(admin_key).put(f"{API}/workflows/{workflow_id}", by_id, format="json")
    document = export(admin_key, workflow_id)
    assert [s["id"] for s in document["sources"]] == [source_id]
    imported = import_(other_admin_key, document)
    assert imported.status_code == 201, imported.content
    copy = Source.objects.get(tenant=other_admin_key.row.tenant)
    current = imported.json()["workflow"]["spec"]
    assert current["nodes"][1]["metadata"]["source"] == copy.id != source_id
    assert (
        run(other_admin_key, imported.json()["workflow"]["id"], {"user_input": "Bo"})[
            "final_output"
        ]
        == "A: echo: Hey Bo"
    )
