"""Stored sources as a user sees them: CRUD with validation, versions, in-use deletes, tests."""

import json
from pathlib import Path
from typing import Any

import pytest

from sources.models import Source
from tenants.models import AuditEvent, Tenant
from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import MODELS, FakeOpenAIServer

pytestmark = pytest.mark.django_db
URL = "/api/v1/sources"
WORKFLOWS = "/api/v1/workflows"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY_VAR = "AGENTFLOW_T_ACME_OPENAI"
PG_VAR = "AGENTFLOW_T_ACME_PG"


@pytest.fixture
def granted(tenant: Tenant) -> Tenant:
    # Bound to where these tests send them: OpenAI (its API, or the fake on 127.0.0.1), databases.
    tenant.allowed_env = [
        "AGENTFLOW_T_ACME_*@openai|postgres|mysql",
        "AGENTFLOW_T_ACME_*@openai:127.0.0.1",
    ]
    tenant.save()
    return tenant


def openai_body(name: str = "gpt", **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "openai",
        "config": {"model_name": "gpt-4o-mini", "api_key_env": KEY_VAR, **config},
        "description": "the team's OpenAI account",
    }


def create(key: IssuedKey, body: dict[str, Any]) -> dict[str, Any]:
    response = client_for(key).post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def llm_spec(source: str = "gpt", inline: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "writer",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "write",
                "type": "llm",
                "metadata": {"source": source, "prompt": "{{ user_input }}"},
            },
        ],
        "edges": [{"from": "input", "to": "write"}],
    }
    if inline is not None:
        spec["sources"] = inline
    return spec


def error_types(response: Any) -> list[str]:
    return [e["type"] for e in response.json()["errors"]]


# --- create -------------------------------------------------------------------------------------


def test_it_stores_a_valid_source_as_version_1(granted: Tenant, developer_key: IssuedKey) -> None:
    response = client_for(developer_key).post(URL, openai_body(), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("src_")
    assert response["Location"] == f"/api/v1/sources/{body['id']}"
    assert (body["name"], body["kind"], body["version"]) == ("gpt", "openai", 1)
    assert body["config"] == {"model_name": "gpt-4o-mini", "api_key_env": KEY_VAR}
    assert body["created_by"] == f"key:{developer_key.prefix}"
    assert client_for(developer_key).get(response["Location"]).json() == body
    listed = client_for(developer_key).get(URL).json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]


def test_it_refuses_a_literal_secret_and_never_echoes_it(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    secret = "sk-live-abcdef0123456789abcdef"
    body = {"name": "gpt", "kind": "openai", "config": {"model_name": "m", "api_key": secret}}
    response = client_for(developer_key).post(URL, body, format="json")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert "literal_secret" in error_types(response)
    error = next(e for e in response.json()["errors"] if e["type"] == "literal_secret")
    assert error["path"] == "/config/api_key"
    assert "api_key_env" in error["message"]
    assert secret not in response.content.decode()
    assert not Source.objects.exists()


def test_it_refuses_a_variable_the_tenant_was_not_granted(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    body = openai_body(api_key_env="AGENTFLOW_T_GLOBEX_OPENAI")
    response = client_for(developer_key).post(URL, body, format="json")
    assert response.status_code == 422
    assert error_types(response) == ["forbidden_secret_ref"]
    assert response.json()["errors"][0]["path"] == "/config/api_key_env"
    assert not Source.objects.exists()


@pytest.mark.parametrize("grant", [["DJANGO_SECRET_KEY"], ["DJANGO_*"], ["AGENTFLOW_T_ACME_*"]])
def test_it_always_refuses_the_platforms_own_secret(
    tenant: Tenant, developer_key: IssuedKey, grant: list[str]
) -> None:
    tenant.allowed_env = grant
    tenant.save()
    body = openai_body(api_key_env="DJANGO_SECRET_KEY")
    response = client_for(developer_key).post(URL, body, format="json")
    assert response.status_code == 422
    assert error_types(response) == ["forbidden_secret_ref"]
    assert not Source.objects.exists()


def test_it_refuses_an_unknown_kind(granted: Tenant, developer_key: IssuedKey) -> None:
    body = {"name": "mystery", "kind": "oracle", "config": {"dsn_env": KEY_VAR}}
    response = client_for(developer_key).post(URL, body, format="json")
    assert response.status_code == 422
    assert error_types(response)
    assert any("kind" in e["path"] or "oracle" in e["message"] for e in response.json()["errors"])
    assert not Source.objects.exists()


def test_it_refuses_a_config_that_does_not_fit_its_kind(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    body = {"name": "db", "kind": "postgres", "config": {"pool_size": 0}}
    response = client_for(developer_key).post(URL, body, format="json")
    assert response.status_code == 422
    paths = {e["path"] for e in response.json()["errors"]}
    assert "/config/pool_size" in paths
    assert any(p.startswith("/config") and "connection_string_env" in p for p in paths) or any(
        "connection_string_env" in e["message"] for e in response.json()["errors"]
    )


def test_it_refuses_a_duplicate_name(granted: Tenant, developer_key: IssuedKey) -> None:
    create(developer_key, openai_body())
    response = client_for(developer_key).post(URL, openai_body(), format="json")
    assert response.status_code == 422
    assert error_types(response) == ["duplicate_id"]
    assert Source.objects.count() == 1


def test_another_tenant_may_use_the_same_name(
    granted: Tenant, developer_key: IssuedKey, other_tenant: Tenant, other_admin_key: IssuedKey
) -> None:
    create(developer_key, openai_body())
    other_tenant.allowed_env = [KEY_VAR]
    other_tenant.save()
    create(other_admin_key, openai_body())


def test_a_body_missing_fields_is_a_400_naming_them(developer_key: IssuedKey) -> None:
    response = client_for(developer_key).post(URL, {"name": "x"}, format="json")
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"kind", "config"}


# --- update and versions ------------------------------------------------------------------------


def test_an_update_saves_a_new_version_newest_first(
    granted: Tenant, developer_key: IssuedKey, admin_key: IssuedKey
) -> None:
    created = create(developer_key, openai_body())
    url = f"{URL}/{created['id']}"
    put = client_for(admin_key).put(url, openai_body(model_name="gpt-4o"), format="json")
    assert put.status_code == 200, put.json()
    assert put.json()["version"] == 2
    assert put.json()["config"]["model_name"] == "gpt-4o"
    assert put.json()["updated_by"] == f"key:{admin_key.prefix}"
    versions = client_for(developer_key).get(f"{url}/versions").json()
    assert [v["version"] for v in versions["results"]] == [2, 1]
    assert [v["config"]["model_name"] for v in versions["results"]] == ["gpt-4o", "gpt-4o-mini"]
    assert [v["created_by"] for v in versions["results"]] == [
        f"key:{admin_key.prefix}",
        f"key:{developer_key.prefix}",
    ]
    assert all(v["created_at"] for v in versions["results"])


def test_a_patch_of_the_description_alone_adds_no_version(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    created = create(developer_key, openai_body())
    url = f"{URL}/{created['id']}"
    patched = client_for(developer_key).patch(url, {"description": "renamed"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["description"] == "renamed"
    assert patched.json()["version"] == 1
    assert client_for(developer_key).get(f"{url}/versions").json()["count"] == 1


def test_an_update_with_a_secret_is_refused_and_changes_nothing(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    created = create(developer_key, openai_body())
    url = f"{URL}/{created['id']}"
    secret = "sk-live-abcdef0123456789abcdef"
    bad = {"config": {"model_name": "m", "api_key": secret}}
    response = client_for(developer_key).patch(url, bad, format="json")
    assert response.status_code == 422
    assert "literal_secret" in error_types(response)
    assert secret not in response.content.decode()
    assert client_for(developer_key).get(url).json()["config"] == created["config"]


def test_renaming_onto_another_sources_name_is_refused(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    create(developer_key, openai_body("gpt"))
    other = create(developer_key, openai_body("gpt-backup"))
    response = client_for(developer_key).patch(
        f"{URL}/{other['id']}", {"name": "gpt"}, format="json"
    )
    assert response.status_code == 422
    assert error_types(response) == ["duplicate_id"]


# --- delete and use by workflows ----------------------------------------------------------------


def test_delete_is_refused_while_a_stored_workflow_uses_the_source(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    source = create(developer_key, openai_body())
    client = client_for(developer_key)
    workflow = client.post(WORKFLOWS, {"spec": llm_spec("gpt")}, format="json")
    assert workflow.status_code == 201, workflow.json()
    workflow_id = workflow.json()["id"]

    refused = client.delete(f"{URL}/{source['id']}")
    assert refused.status_code == 409
    assert refused["Content-Type"] == "application/problem+json"
    assert workflow_id in refused.json()["detail"]
    assert client.get(f"{URL}/{source['id']}").status_code == 200

    assert client.delete(f"{WORKFLOWS}/{workflow_id}").status_code == 204
    assert client.delete(f"{URL}/{source['id']}").status_code == 204
    assert client.get(f"{URL}/{source['id']}").status_code == 404
    assert client.get(URL).json()["count"] == 0


def test_a_rename_or_a_new_kind_is_refused_while_a_workflow_uses_the_source(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    source = create(developer_key, openai_body())
    client = client_for(developer_key)
    assert client.post(WORKFLOWS, {"spec": llm_spec("gpt")}, format="json").status_code == 201
    renamed = client.patch(f"{URL}/{source['id']}", {"name": "gpt-old"}, format="json")
    assert renamed.status_code == 409
    assert "rename" in renamed.json()["detail"]
    sqlite = {"kind": "sqlite", "config": {"path": "demo.sqlite3"}}
    assert client.patch(f"{URL}/{source['id']}", sqlite, format="json").status_code == 409
    config = {"config": {**source["config"], "temperature": 0.1}}
    assert client.patch(f"{URL}/{source['id']}", config, format="json").status_code == 200
    assert client.get(f"{URL}/{source['id']}").json()["name"] == "gpt"


def test_delete_is_refused_while_a_workflow_names_the_source_by_id(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    source = create(developer_key, openai_body())
    client = client_for(developer_key)
    workflow = client.post(WORKFLOWS, {"spec": llm_spec(source["id"])}, format="json")
    assert workflow.status_code == 201, workflow.json()
    assert client.delete(f"{URL}/{source['id']}").status_code == 409


def test_a_workflow_with_an_inline_source_of_that_name_does_not_block_delete(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    source = create(developer_key, openai_body())
    inline = [
        {"id": "gpt", "kind": "openai", "config": {"model_name": "m", "api_key_env": KEY_VAR}}
    ]
    client = client_for(developer_key)
    assert client.post(WORKFLOWS, {"spec": llm_spec("gpt", inline)}, format="json").status_code == (
        201
    )
    assert client.delete(f"{URL}/{source['id']}").status_code == 204


def test_a_name_freed_by_delete_can_be_used_again(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    first = create(developer_key, openai_body())
    assert client_for(developer_key).delete(f"{URL}/{first['id']}").status_code == 204
    second = create(developer_key, openai_body())
    assert second["id"] != first["id"]


def test_a_workflow_naming_a_source_neither_inline_nor_stored_is_refused(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    response = client_for(developer_key).post(WORKFLOWS, {"spec": llm_spec("nope")}, format="json")
    assert response.status_code == 422
    error = next(e for e in response.json()["errors"] if e["type"] == "unknown_source")
    assert error["node_id"] == "write"
    assert error["path"] == "/nodes/1/metadata/source"


def test_another_tenants_source_is_unknown_to_a_workflow(
    granted: Tenant,
    developer_key: IssuedKey,
    other_tenant: Tenant,
    other_admin_key: IssuedKey,
) -> None:
    other_tenant.allowed_env = [KEY_VAR]
    other_tenant.save()
    theirs = create(other_admin_key, openai_body("their-gpt"))
    for ref in ("their-gpt", theirs["id"]):
        response = client_for(developer_key).post(WORKFLOWS, {"spec": llm_spec(ref)}, format="json")
        assert response.status_code == 422
        assert "unknown_source" in error_types(response)


@pytest.fixture
def demo_db(settings, tmp_path: Path, tenant: Tenant) -> Path:
    """The demo catalogue in the tenant's own sqlite directory."""
    from tenants.management.commands.demo_catalogue import write_catalogue

    settings.AGENTFLOW_SQLITE_ROOT = tmp_path
    write_catalogue(tmp_path / f"t{tenant.pk}" / "demo.sqlite3")
    return tmp_path


def test_a_stored_sqlite_source_lets_a_stored_workflow_validate_and_run(
    demo_db: Path, developer_key: IssuedKey
) -> None:
    spec = json.loads((EXAMPLES / "offline-demo.json").read_text())
    del spec["sources"]
    client = client_for(developer_key)
    refused = client.post(WORKFLOWS, {"spec": spec}, format="json")
    assert refused.status_code == 422
    assert "unknown_source" in error_types(refused)

    create(developer_key, {"name": "demo", "kind": "sqlite", "config": {"path": "demo.sqlite3"}})
    validated = client.post(f"{WORKFLOWS}/validate", {"spec": spec}, format="json").json()
    assert validated["valid"] is True, validated
    workflow = client.post(WORKFLOWS, {"spec": spec}, format="json")
    assert workflow.status_code == 201, workflow.json()
    ran = client.post(
        f"{WORKFLOWS}/{workflow.json()['id']}/execute",
        {"initial_state": {"user_input": "any prices?"}},
        format="json",
    )
    assert ran.status_code == 200, ran.json()
    body = ran.json()
    assert body["status"] == "success", body
    assert body["final_state"]["final_output"].splitlines()[0] == (
        "Espresso machine: 249.0 (12 in stock)"
    )


# --- POST /sources/{id}/test --------------------------------------------------------------------


def test_an_openai_source_that_answers_tests_ok(
    granted: Tenant, developer_key: IssuedKey, openai_server: FakeOpenAIServer, monkeypatch
) -> None:
    monkeypatch.setenv(KEY_VAR, "sk-test-0123456789")
    source = create(developer_key, openai_body(base_url=openai_server.base_url))
    response = client_for(developer_key).post(f"{URL}/{source['id']}/test")
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is True, report
    assert [c["name"] for c in report["checks"]] == ["connect"]
    assert report["checks"][0]["ok"] is True
    assert str(len(MODELS["openai"])) in report["checks"][0]["detail"]
    assert report["warnings"] == []
    assert openai_server.last_request.path.endswith("/models")
    assert openai_server.last_request.headers["authorization"] == "Bearer sk-test-0123456789"


def test_a_model_the_server_does_not_list_is_a_warning(
    granted: Tenant, developer_key: IssuedKey, openai_server: FakeOpenAIServer, monkeypatch
) -> None:
    monkeypatch.setenv(KEY_VAR, "sk-test-0123456789")
    body = openai_body(base_url=openai_server.base_url, model_name="gpt-7-turbo")
    source = create(developer_key, body)
    report = client_for(developer_key).post(f"{URL}/{source['id']}/test").json()
    assert report["ok"] is True
    assert len(report["warnings"]) == 1
    assert "gpt-7-turbo" in report["warnings"][0]


def test_a_source_whose_variable_is_unset_fails_its_test_naming_the_variable(
    granted: Tenant, developer_key: IssuedKey, openai_server: FakeOpenAIServer, monkeypatch
) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    source = create(developer_key, openai_body(base_url=openai_server.base_url))
    response = client_for(developer_key).post(f"{URL}/{source['id']}/test")
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is False
    failed = [c for c in report["checks"] if not c["ok"]]
    assert len(failed) == 1
    assert KEY_VAR in failed[0]["detail"]
    assert not openai_server.requests


def test_a_variable_no_longer_granted_is_never_read_or_sent(
    granted: Tenant, developer_key: IssuedKey, openai_server: FakeOpenAIServer, monkeypatch
) -> None:
    monkeypatch.setenv(KEY_VAR, "sk-test-0123456789")
    source = create(developer_key, openai_body(base_url=openai_server.base_url))
    granted.allowed_env = []  # the operator withdraws the grant after the source was saved
    granted.save()
    report = client_for(developer_key).post(f"{URL}/{source['id']}/test").json()
    assert report["ok"] is False
    assert [c["name"] for c in report["checks"]] == ["config"]
    assert KEY_VAR in report["checks"][0]["detail"]
    assert not openai_server.requests  # the key never left the server
    assert "sk-test-0123456789" not in json.dumps(report)


def test_a_withdrawn_grant_stops_workflows_using_the_stored_source(
    granted: Tenant, developer_key: IssuedKey
) -> None:
    create(developer_key, openai_body())
    client = client_for(developer_key)
    assert client.post(WORKFLOWS, {"spec": llm_spec("gpt")}, format="json").status_code == 201
    granted.allowed_env = []  # the operator withdraws the grant after both were saved
    granted.save()
    body = client.post("/api/v1/workflows/validate", llm_spec("gpt"), format="json").json()
    assert [e["type"] for e in body["errors"]] == ["forbidden_secret_ref"]
    assert KEY_VAR in body["errors"][0]["message"]
    run = client.post("/api/v1/workflows/execute", {"workflow": llm_spec("gpt")}, format="json")
    assert run.status_code == 422


def test_a_rejected_key_fails_the_test_without_showing_the_key(
    granted: Tenant, developer_key: IssuedKey, openai_server: FakeOpenAIServer, monkeypatch
) -> None:
    monkeypatch.setenv(KEY_VAR, "sk-test-wrong-0123456789")
    openai_server.script(status=401)
    source = create(developer_key, openai_body(base_url=openai_server.base_url))
    report = client_for(developer_key).post(f"{URL}/{source['id']}/test").json()
    assert report["ok"] is False
    assert "sk-test-wrong-0123456789" not in json.dumps(report)


def test_a_sqlite_source_tests_ok(demo_db: Path, developer_key: IssuedKey) -> None:
    source = create(
        developer_key, {"name": "demo", "kind": "sqlite", "config": {"path": "demo.sqlite3"}}
    )
    report = client_for(developer_key).post(f"{URL}/{source['id']}/test").json()
    assert report["ok"] is True, report
    assert [c["name"] for c in report["checks"]] == ["select"]


def test_a_missing_sqlite_file_fails_its_test(demo_db: Path, developer_key: IssuedKey) -> None:
    source = create(
        developer_key, {"name": "gone", "kind": "sqlite", "config": {"path": "missing.sqlite3"}}
    )
    report = client_for(developer_key).post(f"{URL}/{source['id']}/test").json()
    assert report["ok"] is False
    assert report["checks"] and not report["checks"][-1]["ok"]


def test_a_postgres_source_as_a_superuser_fails_its_test(
    granted: Tenant, developer_key: IssuedKey, monkeypatch
) -> None:
    monkeypatch.setenv(PG_VAR, "postgres://postgres@127.0.0.1:5432/test")
    source = create(
        developer_key,
        {"name": "shop", "kind": "postgres", "config": {"connection_string_env": PG_VAR}},
    )
    report = client_for(developer_key).post(f"{URL}/{source['id']}/test").json()
    assert report["ok"] is False, report
    checks = {c["name"]: c for c in report["checks"]}
    assert (checks["select"]["ok"], checks["role"]["ok"]) == (True, False)
    assert "superuser" in checks["role"]["detail"]
    assert "AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES" in checks["role"]["detail"]


def test_a_superuser_source_tests_ok_with_a_warning_when_the_operator_allows_it(
    granted: Tenant, developer_key: IssuedKey, monkeypatch, settings
) -> None:
    settings.AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES = True
    monkeypatch.setenv(PG_VAR, "postgres://postgres@127.0.0.1:5432/test")
    source = create(
        developer_key,
        {"name": "shop", "kind": "postgres", "config": {"connection_string_env": PG_VAR}},
    )
    report = client_for(developer_key).post(f"{URL}/{source['id']}/test").json()
    assert report["ok"] is True, report
    assert [c["name"] for c in report["checks"]] == ["select", "role"]
    assert any("superuser" in w for w in report["warnings"]), report["warnings"]


# --- tenants and roles --------------------------------------------------------------------------


def test_another_tenants_source_is_a_404_everywhere(
    granted: Tenant, developer_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    source = create(developer_key, openai_body())
    other = client_for(other_admin_key)
    url = f"{URL}/{source['id']}"
    assert other.get(url).status_code == 404
    assert other.get(f"{url}/versions").status_code == 404
    assert other.post(f"{url}/test").status_code == 404
    assert other.put(url, openai_body(), format="json").status_code == 404
    assert other.patch(url, {"description": "x"}, format="json").status_code == 404
    assert other.delete(url).status_code == 404
    assert other.get(URL).json()["count"] == 0
    assert Source.objects.get().deleted_at is None


def test_a_viewer_reads_sources_but_may_not_change_them(
    granted: Tenant, developer_key: IssuedKey, viewer_key: IssuedKey
) -> None:
    source = create(developer_key, openai_body())
    viewer = client_for(viewer_key)
    url = f"{URL}/{source['id']}"
    assert viewer.get(URL).status_code == 200
    assert viewer.get(url).status_code == 200
    assert viewer.get(f"{url}/versions").status_code == 200
    refused = [
        viewer.post(URL, openai_body("other"), format="json"),
        viewer.put(url, openai_body(model_name="x"), format="json"),
        viewer.patch(url, {"description": "x"}, format="json"),
        viewer.delete(url),
    ]
    assert [r.status_code for r in refused] == [403] * 4
    assert Source.objects.count() == 1
    assert Source.objects.get().version == 1


def test_an_executor_may_not_create_or_change_sources(
    granted: Tenant, developer_key: IssuedKey, executor_key: IssuedKey
) -> None:
    source = create(developer_key, openai_body())
    executor = client_for(executor_key)
    assert executor.post(URL, openai_body("other"), format="json").status_code == 403
    assert executor.delete(f"{URL}/{source['id']}").status_code == 403


def test_a_viewer_may_not_make_the_server_call_a_source(
    granted: Tenant,
    developer_key: IssuedKey,
    viewer_key: IssuedKey,
    openai_server: FakeOpenAIServer,
    monkeypatch,
) -> None:
    """A test sends the tenant's credential to the source's host: not for read-only keys."""
    monkeypatch.setenv(KEY_VAR, "sk-test-0123456789")
    source = create(developer_key, openai_body(base_url=openai_server.base_url))
    response = client_for(viewer_key).post(f"{URL}/{source['id']}/test")
    assert response.status_code == 403
    assert not openai_server.requests


def test_source_writes_are_audited(granted: Tenant, developer_key: IssuedKey) -> None:
    source = create(developer_key, openai_body())
    client = client_for(developer_key)
    client.patch(f"{URL}/{source['id']}", {"description": "x"}, format="json")
    client.delete(f"{URL}/{source['id']}")
    events = AuditEvent.objects.filter(target_id=source["id"]).order_by("id")
    assert [e.action for e in events] == ["source.create", "source.update", "source.delete"]
    assert {e.actor for e in events} == {f"key:{developer_key.prefix}"}
