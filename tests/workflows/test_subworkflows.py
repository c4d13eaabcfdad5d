"""A `workflow` node runs another stored workflow of the tenant inside the same run, through
the API: its nodes in the parent's trace, its tokens and cost in the parent's totals."""

from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeOpenAIServer

pytestmark = pytest.mark.django_db
URL = "/api/v1/workflows"
GPT = {
    "id": "gpt",
    "kind": "openai",
    "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
}


@pytest.fixture
def openai(tenant, openai_server: FakeOpenAIServer, monkeypatch):  # type: ignore[no-untyped-def,unused-ignore]
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS={"openai": openai_server.base_url}):
        yield openai_server


def summariser(label: str = "Summary") -> dict[str, Any]:
    """input → writer (llm) → report (template)."""
    return {
        "name": "summariser",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "writer",
                "type": "llm",
                "metadata": {"source": "gpt", "prompt": "Summarise: {{ user_input }}"},
            },
            {
                "id": "report",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": label + ": {{ text_result }}"},
            },
        ],
        "edges": [{"from": "input", "to": "writer"}, {"from": "writer", "to": "report"}],
        "sources": [GPT],
    }


def greeter(name: str = "greeter") -> dict[str, Any]:
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "answer",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "hi {{ user_input }}"},
            },
        ],
        "edges": [{"from": "input", "to": "answer"}],
    }


def caller(workflow: str, name: str = "caller", **meta: Any) -> dict[str, Any]:
    """input → call (workflow) → done (template of the call's result)."""
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "call", "type": "workflow", "metadata": {"workflow": workflow, **meta}},
            {
                "id": "done",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "{{ outputs.call }}"},
            },
        ],
        "edges": [{"from": "input", "to": "call"}, {"from": "call", "to": "done"}],
    }


def polisher(workflow: str) -> dict[str, Any]:
    """input → call (the summariser, its result mapped to `summary`) → polish (llm) → done."""
    return {
        "name": "polisher",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "call",
                "type": "workflow",
                "metadata": {
                    "workflow": workflow,
                    "input": {"user_input": "{{ user_input }} please"},
                    "output": {"summary": "final_output", "child_text": "text_result"},
                },
            },
            {
                "id": "polish",
                "type": "llm",
                "metadata": {"source": "gpt", "prompt": "Polish: {{ summary }}"},
            },
            {
                "id": "done",
                "type": "aggregator",
                "metadata": {
                    "strategy": "template",
                    "template": "{{ outputs.call }} | {{ text_result }} | {{ child_text }}",
                },
            },
        ],
        "edges": [
            {"from": "input", "to": "call"},
            {"from": "call", "to": "polish"},
            {"from": "polish", "to": "done"},
        ],
        "sources": [GPT],
    }


def create(key: IssuedKey, spec: dict[str, Any]) -> dict[str, Any]:
    response = client_for(key).post(URL, {"spec": spec}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def refused(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.json()
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


def run(key: IssuedKey, workflow_id: str, user_input: str = "cats", **body: Any) -> Any:
    body.setdefault("initial_state", {"user_input": user_input})
    return client_for(key).post(f"{URL}/{workflow_id}/execute", body, format="json")


def trace(key: IssuedKey, execution_id: str) -> dict[str, Any]:
    response = client_for(key).get(f"/api/v1/executions/{execution_id}")
    assert response.status_code == 200
    return response.json()


# --- running ------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["name", "id"])
def test_a_parent_run_traces_its_childs_nodes_and_adds_up_their_tokens(
    openai: FakeOpenAIServer, admin_key: IssuedKey, by: str
) -> None:
    child = create(admin_key, summariser())
    parent = create(admin_key, polisher(child[by]))
    response = run(admin_key, parent["id"])
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "success", body
    summary = "Summary: echo: Summarise: cats please"
    final = body["final_state"]
    assert (
        final["final_output"]
        == f"{summary} | echo: Polish: {summary} | echo: Summarise: cats please"
    )
    assert final["summary"] == summary
    run_trace = trace(admin_key, body["execution_id"])
    rows = {row["node_id"]: row for row in run_trace["nodes"]}
    assert set(rows) == {
        "input",
        "call",
        "call/input",
        "call/writer",
        "call/report",
        "polish",
        "done",
    }
    assert all(row["status"] == "succeeded" for row in rows.values())
    assert rows["call"]["details"]["workflow"] == {
        "id": child["id"],
        "name": "summariser",
        "version": 1,
    }
    assert rows["call"]["tokens"] == 0  # its nodes' rows hold what it used
    assert rows["call/writer"]["tokens"] == rows["polish"]["tokens"] > 0
    assert body["tokens_used"] == sum(row["tokens"] for row in rows.values())
    assert body["tokens_used"] == 2 * rows["polish"]["tokens"]
    assert body["cost"] == pytest.approx(sum(row["cost"] for row in rows.values()))
    assert body["cost"] > 0
    assert rows["call"]["details"]["tokens_inside"] == rows["call/writer"]["tokens"]


def test_an_inline_spec_may_call_a_stored_workflow(admin_key: IssuedKey) -> None:
    create(admin_key, greeter())
    body = {"workflow": caller("greeter"), "initial_state": {"user_input": "ann"}}
    response = client_for(admin_key).post(f"{URL}/execute", body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["final_state"]["final_output"] == "hi ann"


def test_the_child_counts_toward_the_parents_max_steps(admin_key: IssuedKey) -> None:
    create(admin_key, greeter())
    spec = caller("greeter") | {"limits": {"max_steps": 3}}
    body = run(admin_key, create(admin_key, spec)["id"]).json()
    assert body["status"] == "failed", body
    assert body["error"]["code"] == "max_steps"
    assert body["error"]["node_id"] == "call/answer"


def test_a_child_failure_names_the_node_inside_it(
    openai: FakeOpenAIServer, admin_key: IssuedKey
) -> None:
    child = create(admin_key, summariser())
    parent = create(admin_key, caller(child["id"]))
    openai.script(status=400)
    body = run(admin_key, parent["id"]).json()
    assert body["status"] == "failed", body
    assert body["error"]["node_id"] == "call/writer"
    rows = {row["node_id"]: row for row in trace(admin_key, body["execution_id"])["nodes"]}
    assert rows["call/writer"]["status"] == rows["call"]["status"] == "failed"


# --- versions -----------------------------------------------------------------------------------


def test_a_pinned_version_runs_while_the_unpinned_call_follows_the_child(
    admin_key: IssuedKey,
) -> None:
    child = create(admin_key, greeter())
    spec = greeter()
    spec["nodes"][1]["metadata"]["template"] = "hello {{ user_input }}"
    put = client_for(admin_key).put(f"{URL}/{child['id']}", {"spec": spec}, format="json")
    assert put.status_code == 200, put.json()
    pinned = create(admin_key, caller(child["id"], name="pinned", version=1))
    current = create(admin_key, caller(child["id"], name="current"))
    first = run(admin_key, pinned["id"]).json()
    second = run(admin_key, current["id"]).json()
    assert first["final_state"]["final_output"] == "hi cats"
    assert second["final_state"]["final_output"] == "hello cats"
    digests = [trace(admin_key, b["execution_id"])["spec_digest"] for b in (first, second)]
    assert digests[0] != digests[1]


def test_a_version_that_does_not_exist_is_refused(admin_key: IssuedKey) -> None:
    child = create(admin_key, greeter())
    response = client_for(admin_key).post(
        URL, {"spec": caller(child["id"], version=7)}, format="json"
    )
    error = refused(response)
    assert error["type"] == "unknown_workflow_version"
    assert error["path"] == "/nodes/1/metadata/version"
    assert "versions 1 to 1" in error["message"]


def test_a_changed_child_changes_the_run_and_its_digest(admin_key: IssuedKey) -> None:
    child = create(admin_key, greeter())
    parent = create(admin_key, caller("greeter"))
    before = run(admin_key, parent["id"]).json()
    spec = greeter()
    spec["nodes"][1]["metadata"]["template"] = "hey {{ user_input }}"
    client_for(admin_key).put(f"{URL}/{child['id']}", {"spec": spec}, format="json")
    after = run(admin_key, parent["id"]).json()
    assert (before["final_state"]["final_output"], after["final_state"]["final_output"]) == (
        "hi cats",
        "hey cats",
    )
    first, second = (trace(admin_key, b["execution_id"]) for b in (before, after))
    assert first["spec_digest"] != second["spec_digest"]


# --- what is refused ----------------------------------------------------------------------------


def test_workflows_calling_each_other_are_a_cycle(admin_key: IssuedKey) -> None:
    a = create(admin_key, greeter("a"))
    b = create(admin_key, caller(a["id"], name="b"))
    response = client_for(admin_key).put(
        f"{URL}/{a['id']}", {"spec": caller(b["id"], name="a")}, format="json"
    )
    error = refused(response)
    assert error["type"] == "workflow_cycle"
    assert error["node_id"] == "call"
    assert "a → b → a" in error["message"]


def test_a_workflow_calling_itself_is_a_cycle(admin_key: IssuedKey) -> None:
    a = create(admin_key, greeter("a"))
    for ref in (a["id"], "a"):
        response = client_for(admin_key).put(
            f"{URL}/{a['id']}", {"spec": caller(ref, name="a")}, format="json"
        )
        error = refused(response)
        assert error["type"] == "workflow_cycle"
        assert "a → a" in error["message"]


def test_calls_nested_deeper_than_the_operator_allows_are_refused(admin_key: IssuedKey) -> None:
    create(admin_key, greeter("level3"))
    create(admin_key, caller("level3", name="level2"))
    with override_settings(AGENTFLOW_MAX_WORKFLOW_DEPTH=1):
        response = client_for(admin_key).post(
            URL, {"spec": caller("level2", name="level1")}, format="json"
        )
        error = refused(response)
    assert error["type"] == "workflow_depth"
    assert "level1 → level2 → level3" in error["message"]
    assert "AGENTFLOW_MAX_WORKFLOW_DEPTH" in error["message"]
    create(admin_key, caller("level2", name="level1"))  # depth 2 is within the default, 3


def test_an_unknown_or_another_tenants_workflow_is_unknown(
    admin_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    theirs = create(other_admin_key, greeter("their-secret-flow"))
    for ref in ("nothing-here", theirs["id"], "their-secret-flow"):
        response = client_for(admin_key).post(URL, {"spec": caller(ref)}, format="json")
        error = refused(response)
        assert error["type"] == "unknown_workflow"
        assert error["path"] == "/nodes/1/metadata/workflow"
        assert "their-secret-flow" not in error["message"] or ref == "their-secret-flow"


def test_the_validate_endpoint_checks_the_child(admin_key: IssuedKey) -> None:
    response = client_for(admin_key).post(f"{URL}/validate", caller("ghost"), format="json")
    assert response.status_code == 200
    assert [e["type"] for e in response.json()["errors"]] == ["unknown_workflow"]


def test_a_deleted_child_fails_its_parent_clearly(admin_key: IssuedKey) -> None:
    child = create(admin_key, greeter())
    parent = create(admin_key, caller(child["id"]))
    assert client_for(admin_key).delete(f"{URL}/{child['id']}").status_code == 204
    error = refused(run(admin_key, parent["id"]))
    assert error["type"] == "unknown_workflow"
    assert child["id"] in error["message"]


def test_a_child_that_became_invalid_fails_its_parent_clearly(
    openai: FakeOpenAIServer, tenant: Any, admin_key: IssuedKey
) -> None:
    child = create(admin_key, summariser())
    parent = create(admin_key, caller(child["id"]))
    tenant.allowed_env = []
    tenant.save()
    error = refused(run(admin_key, parent["id"]))
    assert error["type"] == "invalid_workflow"
    assert "not valid now" in error["message"]
    assert "OPENAI_API_KEY" in error["message"]


def test_a_child_that_asks_for_approval_is_refused(admin_key: IssuedKey) -> None:
    spec = greeter("asks")
    spec["nodes"].append({"id": "ok", "type": "approval", "metadata": {"question": "ok?"}})
    spec["edges"].append({"from": "answer", "to": "ok"})
    create(admin_key, spec)
    error = refused(client_for(admin_key).post(URL, {"spec": caller("asks")}, format="json"))
    assert error["type"] == "invalid_workflow"
    assert "approval" in error["message"]


def test_the_run_view_lists_the_childs_attempts(
    openai: FakeOpenAIServer, admin_key: IssuedKey, admin_client: Any
) -> None:
    from django.contrib.admin.utils import quote

    child = create(admin_key, summariser())
    body = run(admin_key, create(admin_key, caller(child["id"]))["id"]).json()
    page = admin_client.get(f"/admin/executions/execution/{quote(body['execution_id'])}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "call/writer" in html
    assert "call/report" in html
