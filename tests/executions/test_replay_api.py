"""Replaying an execution through the API: provider calls answered from the original's record,
against the fake OpenAI server driven by the real openai SDK."""

from typing import Any

import pytest
from django.test import override_settings

from executions.models import Execution, ProviderRecording, Status
from tenants.models import AuditEvent
from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeOpenAIServer
from tests.observability.runs import finished, running_worker

pytestmark = pytest.mark.django_db
WORKFLOWS = "/api/v1/workflows"
EXECUTIONS = "/api/v1/executions"
POLISH = "Polish this: {{ text_result }}"


def spec(polish: str = POLISH) -> dict[str, Any]:
    """input → classify (llm router) → draft (llm) → polish (llm), one OpenAI source."""
    return {
        "name": "replayed-chain",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "classify",
                "type": "router",
                "metadata": {
                    "strategy": "llm",
                    "source": "gpt",
                    "intents": {"question": "asks something", "other": "anything else"},
                    "default": "other",
                },
            },
            {
                "id": "draft",
                "type": "llm",
                "metadata": {"source": "gpt", "prompt": "{{ user_input }}"},
            },
            {"id": "polish", "type": "llm", "metadata": {"source": "gpt", "prompt": polish}},
        ],
        "edges": [
            {"from": "input", "to": "classify"},
            {"from": "classify", "to": "draft"},
            {"from": "draft", "to": "polish"},
        ],
        "sources": [
            {
                "id": "gpt",
                "kind": "openai",
                "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
            }
        ],
    }


@pytest.fixture
def openai(tenant, openai_server: FakeOpenAIServer, monkeypatch):  # type: ignore[no-untyped-def,unused-ignore]
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS={"openai": openai_server.base_url}):
        yield openai_server


def calls(server: FakeOpenAIServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


def store(key: IssuedKey) -> str:
    response = client_for(key).post(WORKFLOWS, {"spec": spec()}, format="json")
    assert response.status_code == 201, response.json()
    return str(response.json()["id"])


def run(key: IssuedKey, workflow_id: str, **extra: Any) -> dict[str, Any]:
    body = {"initial_state": {"user_input": "Is the sky blue?"}, **extra}
    response = client_for(key).post(f"{WORKFLOWS}/{workflow_id}/execute", body, format="json")
    assert response.status_code in (200, 202), response.json()
    return dict(response.json())


def replay(key: IssuedKey, execution_id: str, **body: Any) -> Any:
    return client_for(key).post(f"{EXECUTIONS}/{execution_id}/replay", body, format="json")


def trace(key: IssuedKey, execution_id: str) -> dict[str, Any]:
    return dict(client_for(key).get(f"{EXECUTIONS}/{execution_id}").json())


def rows(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["node_id"]: node for node in run["nodes"]}


def test_a_replay_of_an_unchanged_run_calls_no_provider_and_costs_nothing(
    openai: FakeOpenAIServer, developer_key: IssuedKey
) -> None:
    original = run(developer_key, store(developer_key))
    assert original["status"] == "success" and calls(openai) == 3

    response = replay(developer_key, original["execution_id"])

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "success"
    assert calls(openai) == 3  # not one more
    assert body["final_state"]["text_result"] == original["final_state"]["text_result"]
    assert body["final_state"]["intent"] == original["final_state"]["intent"]
    assert body["tokens_used"] == 0 and body["cost"] == 0
    shown = trace(developer_key, body["execution_id"])
    assert shown["replay_of"] == original["execution_id"]
    assert shown["replay_from_node"] == ""
    before = rows(trace(developer_key, original["execution_id"]))
    for node_id in ("classify", "draft", "polish"):
        row = rows(shown)[node_id]
        assert (row["tokens"], row["cost"]) == (0, 0)
        assert row["details"]["replayed"] is True
        assert row["details"]["recorded_tokens"] == before[node_id]["tokens"] > 0
        assert row["details"]["recorded_cost"] == pytest.approx(before[node_id]["cost"])
        assert "replayed" not in before[node_id]["details"]
    assert "replayed" not in rows(shown)["input"]["details"]
    assert shown["tokens_used"] == sum(r["tokens"] for r in shown["nodes"]) == 0
    # its own calls are recorded too: a replay of the replay calls nothing either
    assert ProviderRecording.objects.filter(execution_id=body["execution_id"]).count() == 3
    again = replay(developer_key, body["execution_id"]).json()
    assert again["status"] == "success" and calls(openai) == 3
    audit = AuditEvent.objects.filter(action="execution.replay", target_id=body["execution_id"])
    assert audit.get().details["replay_of"] == original["execution_id"]


def test_a_replay_on_a_version_with_one_prompt_changed_calls_the_provider_once(
    openai: FakeOpenAIServer, developer_key: IssuedKey
) -> None:
    workflow_id = store(developer_key)
    original = run(developer_key, workflow_id)
    client = client_for(developer_key)
    changed = spec(polish="Polish it, briefly: {{ text_result }}")
    saved = client.put(f"{WORKFLOWS}/{workflow_id}", {"spec": changed}, format="json")
    assert saved.status_code == 200 and saved.json()["version"] == 2

    response = replay(developer_key, original["execution_id"], version=2)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert calls(openai) == 3 + 1
    assert openai.last_request.json["messages"][-1]["content"].startswith("Polish it, briefly")
    assert body["final_state"]["text_result"].startswith("echo: Polish it, briefly")
    shown = trace(developer_key, body["execution_id"])
    assert shown["workflow_version"] == 2 and shown["replay_of"] == original["execution_id"]
    nodes = rows(shown)
    assert nodes["draft"]["details"]["replayed"] and nodes["classify"]["details"]["replayed"]
    assert "replayed" not in nodes["polish"]["details"] and nodes["polish"]["tokens"] > 0
    assert (
        body["tokens_used"] == sum(r["tokens"] for r in shown["nodes"]) == nodes["polish"]["tokens"]
    )
    assert body["cost"] == pytest.approx(sum(r["cost"] for r in shown["nodes"]))
    assert body["cost"] == pytest.approx(nodes["polish"]["cost"]) and body["cost"] > 0


def test_a_replay_from_a_node_keeps_what_came_before_and_runs_it_and_the_rest_afresh(
    openai: FakeOpenAIServer, developer_key: IssuedKey
) -> None:
    original = run(developer_key, store(developer_key))

    from_polish = replay(developer_key, original["execution_id"], from_node="polish").json()
    assert from_polish["status"] == "success" and calls(openai) == 3 + 1
    from_draft = replay(developer_key, original["execution_id"], from_node="draft").json()
    assert from_draft["status"] == "success" and calls(openai) == 3 + 1 + 2

    nodes = rows(trace(developer_key, from_draft["execution_id"]))
    assert nodes["classify"]["details"]["replayed"] is True
    assert nodes["draft"]["tokens"] > 0 and nodes["polish"]["tokens"] > 0
    assert "replayed" not in nodes["draft"]["details"]
    assert trace(developer_key, from_draft["execution_id"])["replay_from_node"] == "draft"


@pytest.mark.django_db(transaction=True)  # the worker reads on its own connection
def test_a_background_replay_is_answered_from_the_record_too(
    openai: FakeOpenAIServer, developer_key: IssuedKey
) -> None:
    original = run(developer_key, store(developer_key))
    response = replay(developer_key, original["execution_id"], mode="async")
    assert response.status_code == 202, response.json()
    with running_worker():
        done = finished(response.json()["execution_id"])
    assert done.status == Status.SUCCEEDED, done.error
    assert calls(openai) == 3 and done.tokens_used == 0
    assert (
        done.final_state
        and done.final_state["text_result"] == (original["final_state"]["text_result"])
    )
    assert ProviderRecording.objects.filter(execution=done).count() == 3


@pytest.mark.django_db(transaction=True)  # the worker reads on its own connection
def test_a_background_replay_from_a_node_starts_from_the_checkpoint_before_it(
    openai: FakeOpenAIServer, developer_key: IssuedKey
) -> None:
    original = run(developer_key, store(developer_key), mode="async")
    with running_worker():
        first = finished(original["execution_id"])
        assert first.status == Status.SUCCEEDED and calls(openai) == 3
        response = replay(developer_key, first.pk, from_node="polish", mode="async")
        assert response.status_code == 202, response.json()
        done = finished(response.json()["execution_id"])
    assert done.status == Status.SUCCEEDED, done.error
    assert calls(openai) == 3 + 1  # polish only: nothing before it ran again
    assert openai.last_request.json["messages"][-1]["content"].startswith("Polish this: echo:")
    shown = trace(developer_key, done.pk)
    nodes = rows(shown)
    assert [n["node_id"] for n in shown["nodes"]] == ["input", "classify", "draft", "polish"]
    for node_id in ("input", "classify", "draft"):
        assert nodes[node_id]["details"]["kept"] is True
        assert nodes[node_id]["tokens"] == 0
    assert nodes["classify"]["details"]["recorded_tokens"] > 0
    assert "kept" not in nodes["polish"]["details"] and nodes["polish"]["tokens"] > 0
    assert done.tokens_used == sum(n["tokens"] for n in shown["nodes"]) == nodes["polish"]["tokens"]
    assert done.final_state is not None and first.final_state is not None
    assert done.final_state["intent"] == first.final_state["intent"]
    assert done.final_state["outputs"]["draft"] == first.final_state["outputs"]["draft"]


def test_what_a_replay_refuses(
    openai: FakeOpenAIServer,
    developer_key: IssuedKey,
    viewer_key: IssuedKey,
    other_admin_key: IssuedKey,
) -> None:
    original = run(developer_key, store(developer_key))["execution_id"]

    assert replay(other_admin_key, original).status_code == 404
    assert replay(viewer_key, original).status_code == 403
    unknown = replay(developer_key, original, version=9)
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["version"]
    nowhere = replay(developer_key, original, from_node="nowhere")
    assert nowhere.status_code == 422
    assert [e["field"] for e in nowhere.json()["errors"]] == ["from_node"]
    assert "nowhere" in nowhere.json()["detail"]
    Execution.objects.filter(pk=original).update(status=Status.RUNNING)
    busy = replay(developer_key, original)
    assert busy.status_code == 409 and "only a succeeded or failed run" in busy.json()["detail"]
    assert Execution.objects.filter(replay_of_id=original).count() == 0
    assert calls(openai) == 3


def test_a_replay_of_an_inline_run_has_no_versions_to_pick(
    openai: FakeOpenAIServer, developer_key: IssuedKey
) -> None:
    client = client_for(developer_key)
    body = {"workflow": spec(), "initial_state": {"user_input": "hi"}}
    original = client.post("/api/v1/workflows/execute", body, format="json").json()
    assert replay(developer_key, original["execution_id"]).json()["status"] == "success"
    assert calls(openai) == 3
    refused = replay(developer_key, original["execution_id"], version=1)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "version"
