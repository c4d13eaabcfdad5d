"""Running workflows through the API as a user would, against local provider servers."""

import json
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.test import override_settings
from django.utils.html import escape

from runtime.providers.preload import preload
from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeAnthropicServer, FakeOpenAIServer

pytestmark = pytest.mark.django_db
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
URL = "/api/v1/workflows/execute"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@pytest.fixture
def providers(
    tenant, openai_server: FakeOpenAIServer, anthropic_server: FakeAnthropicServer, monkeypatch
):  # type: ignore[no-untyped-def,unused-ignore]
    """The examples' sources, unchanged, reach the local servers through the operator's
    AGENTFLOW_PROVIDER_BASE_URLS; their keys come from the environment."""
    tenant.allowed_env = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SHOP_DATABASE_URL"]
    tenant.save()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    urls = {
        "openai": openai_server.base_url,
        "openai_image": openai_server.base_url,
        "anthropic": anthropic_server.url,
    }
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS=urls):
        yield openai_server, anthropic_server


def execute(key: IssuedKey, spec: dict, state: dict | None = None, **extra: Any):  # type: ignore[no-untyped-def,unused-ignore]
    body = {"workflow": spec, "initial_state": state or {}, **extra}
    return client_for(key).post(URL, body, format="json")


def trace(key: IssuedKey, execution_id: str) -> dict[str, Any]:
    response = client_for(key).get(f"/api/v1/executions/{execution_id}")
    assert response.status_code == 200
    return response.json()


def test_the_offline_demo_runs_with_no_key_and_no_server(
    executor_key: IssuedKey, settings, tmp_path
) -> None:
    from tenants.management.commands.demo_catalogue import write_catalogue

    settings.AGENTFLOW_SQLITE_ROOT = tmp_path
    write_catalogue(tmp_path / f"t{executor_key.row.tenant_id}" / "demo.sqlite3")  # its own dir
    response = execute(executor_key, example("offline-demo"), {"user_input": "any prices?"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["execution_id"].startswith("exec_")
    assert (
        body["final_state"]["final_output"].splitlines()[0]
        == "Espresso machine: 249.0 (12 in stock)"
    )
    assert body["tokens_used"] == 0
    help_run = execute(executor_key, example("offline-demo"), {"user_input": "hello"}).json()
    assert (
        help_run["final_state"]["final_output"] == "Ask me about prices or stock. You said: hello"
    )


def test_the_spec_envelope_is_taken_here_too_and_the_execution_status_is_said(
    executor_key: IssuedKey,
) -> None:
    spec = {
        "name": "envelope",
        "start_node": "in",
        "nodes": [
            {"id": "in", "type": "input"},
            {
                "id": "say",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "ok"},
            },
        ],
        "edges": [{"from": "in", "to": "say"}],
    }
    client = client_for(executor_key)
    ran = client.post(URL, {"spec": spec, "initial_state": {"user_input": "x"}}, format="json")
    assert ran.status_code == 200, ran.content
    body = ran.json()
    assert (body["status"], body["execution_status"]) == ("success", "succeeded")
    stored = client.get(f"/api/v1/executions/{body['execution_id']}").json()
    assert stored["status"] == body["execution_status"]
    both = client.post(URL, {"spec": spec, "workflow": spec}, format="json")
    assert both.status_code == 400
    assert both.json()["errors"][0]["field"] == "workflow"
    assert "not both" in both.json()["errors"][0]["message"]
    neither = client.post(URL, {"initial_state": {}}, format="json")
    assert neither.status_code == 400 and "not neither" in neither.json()["detail"]


def test_parallel_review_runs_its_branches_at_once_and_joins_once(providers, executor_key) -> None:
    openai_server, anthropic_server = providers
    for server in (openai_server, anthropic_server):
        server.script(times=3, delay=0.3)
    response = execute(executor_key, example("parallel-review"), {"user_input": "Cats are great."})
    body = response.json()
    assert body["status"] == "success", body
    report = body["final_state"]["final_output"]
    assert "Style: echo: Review the style of: Cats are great." in report
    assert "Tone: echo: Describe the tone of: Cats are great." in report
    run = trace(executor_key, body["execution_id"])
    nodes = {n["node_id"]: n for n in run["nodes"]}
    assert [n["node_id"] for n in run["nodes"]].count("report") == 1
    assert body["tokens_used"] == sum(n["tokens"] for n in run["nodes"]) > 0
    assert body["cost"] == pytest.approx(sum(n["cost"] for n in run["nodes"]))
    assert body["cost"] > 0
    branches = [nodes[n] for n in ("style", "facts", "tone")]
    assert all(b["duration"] >= 0.3 for b in branches)
    # They overlapped: every branch started before any of them ended.
    starts = [datetime.fromisoformat(b["started_at"]).timestamp() for b in branches]
    ends = [start + b["duration"] for start, b in zip(starts, branches, strict=True)]
    assert max(starts) < min(ends)
    assert body["execution_time"] < sum(b["duration"] for b in branches)
    assert nodes["tone"]["details"]["model"].startswith("claude")
    # what the SDKs sent: the keys from the environment, the spec's models
    chat = [r for r in openai_server.requests if r.path.endswith("/chat/completions")]
    assert {r.headers["authorization"] for r in chat} == {"Bearer sk-test-openai-0123456789"}
    assert {r.json["model"] for r in chat} == {"gpt-4o-mini"}
    # anthropic 2.x sends the key as a bearer token
    assert anthropic_server.last_request.headers["authorization"] == "Bearer sk-ant-test-0123456789"


def test_draft_loop_goes_round_until_the_critic_is_satisfied(providers, executor_key) -> None:
    openai_server, _ = providers
    openai_server.script()  # draft 1: the default echo
    openai_server.script(text="revise")  # critic 1
    openai_server.script()  # draft 2
    openai_server.script(text="done")  # critic 2
    body = execute(executor_key, example("draft-loop"), {"user_input": "teh cat"}).json()
    assert body["status"] == "success", body
    nodes = [n["node_id"] for n in trace(executor_key, body["execution_id"])["nodes"]]
    assert nodes == ["input", "draft", "critic", "draft", "critic", "publish"]
    assert body["final_state"]["final_output"].startswith("echo: Improve this text: echo:")


def test_draft_loop_stops_at_its_bound_with_loop_limit(providers, executor_key) -> None:
    openai_server, _ = providers
    for _ in range(4):
        openai_server.script()
        openai_server.script(text="revise")
    body = execute(executor_key, example("draft-loop"), {"user_input": "x"}).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "loop_limit"
    assert body["final_state"]["text_result"].startswith("echo:")  # partial state kept


def test_rules_triage_routes_on_cel_rules(executor_key) -> None:
    state = {"user_input": "I want a refund", "metadata": {"tier": "free"}}
    body = execute(executor_key, example("rules-triage"), state).json()
    assert body["final_state"]["final_output"] == "BILLING: I want a refund"
    state = {"user_input": "our whole team cannot log in today", "metadata": {"tier": "enterprise"}}
    body = execute(executor_key, example("rules-triage"), state).json()
    assert body["final_state"]["intent"] == "priority"


def test_support_desk_draws_a_picture_stored_for_the_tenant_alone(
    providers, executor_key, other_admin_key, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    body = execute(executor_key, example("support-desk"), {"user_input": "draw a happy cat"}).json()
    assert body["status"] == "success", body
    image = body["final_state"]["image_result"]
    assert image["model"] == "gpt-image-1"
    assert image["size"] == "1024x1024"
    url = image["url"]
    assert url.startswith(f"/api/v1/executions/{body['execution_id']}/files/")
    picture = client_for(executor_key).get(url)
    assert picture.status_code == 200
    assert picture["Content-Type"] == "image/png"
    content = b"".join(picture.streaming_content)  # type: ignore[attr-defined]
    assert content.startswith(b"\x89PNG")
    assert client_for(other_admin_key).get(url).status_code == 404
    assert body["final_state"]["final_output"] == {"illustrator": image}


def test_support_desk_answers_in_text_through_the_llm_lane(providers, executor_key) -> None:
    body = execute(executor_key, example("support-desk"), {"user_input": "Hello there"}).json()
    assert body["status"] == "success", body
    assert body["final_state"]["text_result"] == "echo: Answer the customer: Hello there"
    openai_server, _ = providers
    sent = openai_server.last_request.json
    assert sent["max_tokens"] == 300 and sent["temperature"] == 0.2
    assert sent["messages"][0] == {"role": "system", "content": "You are a concise support agent."}


def test_a_provider_429_fails_the_node_with_a_clear_error(providers, executor_key) -> None:
    openai_server, _ = providers
    openai_server.script(times=10, status=429, headers={"Retry-After": "0"}, message="Slow down")
    spec = example("support-desk")
    spec["sources"][0]["config"]["max_retries"] = 0
    body = execute(executor_key, spec, {"user_input": "Hello"}).json()
    assert body["status"] == "failed"
    assert body["error"]["node_id"] == "writer"
    assert "429" in body["error"]["message"]
    assert "sk-test-openai" not in json.dumps(body)
    writer = [
        n for n in trace(executor_key, body["execution_id"])["nodes"] if n["node_id"] == "writer"
    ]
    assert writer[-1]["status"] == "failed"
    prompt = writer[-1]["details"]["input"]["messages"][-1]  # a failed attempt keeps its input
    assert prompt == {"role": "user", "content": "Answer the customer: Hello"}


def test_a_missing_credential_names_the_variable(providers, executor_key, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    body = execute(executor_key, example("support-desk"), {"user_input": "Hello"}).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "missing_credential"
    assert "OPENAI_API_KEY" in body["error"]["message"]


def test_an_invalid_workflow_is_a_422_listing_its_errors(executor_key) -> None:
    spec = example("offline-demo")
    spec["start_node"] = "nope"
    response = execute(executor_key, spec)
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert [e["type"] for e in response.json()["errors"]] == ["missing_node"]
    from executions.models import Execution

    assert Execution.objects.count() == 0  # nothing half-written


def test_a_bad_body_names_the_field(executor_key) -> None:
    response = client_for(executor_key).post(
        URL, {"workflow": [], "initial_state": 3, "mode": "later"}, format="json"
    )
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"workflow", "initial_state", "mode"}


def test_a_viewer_may_not_execute_but_may_read(viewer_key, executor_key) -> None:
    assert execute(viewer_key, example("rules-triage")).status_code == 403
    body = execute(executor_key, example("rules-triage"), {"user_input": "x", "metadata": {}})
    assert (
        client_for(viewer_key).get(f"/api/v1/executions/{body.json()['execution_id']}").status_code
        == 200
    )


def test_another_tenants_execution_is_a_404(executor_key, other_admin_key) -> None:
    body = execute(
        executor_key, example("rules-triage"), {"user_input": "x", "metadata": {}}
    ).json()
    assert (
        client_for(other_admin_key).get(f"/api/v1/executions/{body['execution_id']}").status_code
        == 404
    )


def test_a_failed_input_check_keeps_the_trace(executor_key) -> None:
    body = execute(executor_key, example("rules-triage"), {"user_input": "no metadata"}).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "invalid_input"
    assert "metadata" in body["error"]["message"]
    run = trace(executor_key, body["execution_id"])
    assert run["status"] == "failed"
    assert [(n["node_id"], n["status"]) for n in run["nodes"]] == [("input", "failed")]
    assert run["final_state"]["user_input"] == "no metadata"


def test_the_admin_shows_an_execution_with_its_trace(executor_key, admin_client) -> None:
    state = {"user_input": "I want a refund", "metadata": {}}
    body = execute(executor_key, example("rules-triage"), state).json()
    page = admin_client.get(f"/admin/executions/execution/{quote(body['execution_id'])}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "billing" in html and "triage" in html and "BILLING: I want a refund" in html


def test_an_idempotency_key_returns_the_same_execution_for_the_same_body(executor_key) -> None:
    from executions.models import Execution

    client = client_for(executor_key)
    body = {
        "workflow": example("rules-triage"),
        "initial_state": {"user_input": "refund", "metadata": {}},
    }
    first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="order-42").json()
    again = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="order-42").json()
    assert again == first
    assert Execution.objects.count() == 1
    body["initial_state"]["user_input"] = "something else"
    reused = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert reused.status_code == 422
    assert reused.json()["errors"][0]["field"] == "Idempotency-Key"
    assert Execution.objects.count() == 1


def test_a_node_the_runs_timeout_interrupts_ends_in_the_trace_too(providers, executor_key) -> None:
    openai_server, _ = providers
    openai_server.script(delay=30.0)  # far longer than the run may take
    preload(["openai"])  # as a server process does at start: the timeout counts imports too
    spec = {
        "name": "slow",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "ask", "type": "llm", "metadata": {"source": "gpt", "prompt": "hi"}},
        ],
        "edges": [{"from": "input", "to": "ask"}],
        "sources": [
            {
                "id": "gpt",
                "kind": "openai",
                "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
            }
        ],
        "limits": {"timeout_seconds": 1},
    }
    body = execute(executor_key, spec, {"user_input": "x"}).json()
    assert body["status"] == "timed_out", body
    nodes = {n["node_id"]: n for n in trace(executor_key, body["execution_id"])["nodes"]}
    assert nodes["ask"]["status"] == "timed_out"  # not `running` for ever
    assert nodes["ask"]["error"]["code"] == "timed_out"


def test_the_trace_tells_the_draft_loops_passes_apart(providers, executor_key) -> None:
    openai_server, _ = providers
    for text in (None, "revise", None, "done"):  # draft, critic, draft, critic
        openai_server.script(**({"text": text} if text else {}))
    body = execute(executor_key, example("draft-loop"), {"user_input": "teh cat"}).json()
    assert body["status"] == "success", body
    nodes = trace(executor_key, body["execution_id"])["nodes"]
    assert [(n["node_id"], n["attempt"], n["loop_pass"]) for n in nodes] == [
        ("input", 1, 1),
        ("draft", 1, 1),
        ("critic", 1, 1),
        ("draft", 1, 2),
        ("critic", 1, 2),
        ("publish", 1, 1),
    ]


def test_each_llm_attempt_records_its_rendered_prompt_redacted(
    providers, executor_key, admin_client, monkeypatch
) -> None:
    openai_server, _ = providers
    canary = f"sk-canary-{secrets.token_hex(8)}"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    for text in (None, "revise", None, "done"):
        openai_server.script(**({"text": text} if text else {}))
    state = {"user_input": f"teh cat (my key is {canary})"}
    body = execute(executor_key, example("draft-loop"), state).json()
    assert body["status"] == "success", body
    run = trace(executor_key, body["execution_id"])
    drafts = [n["details"]["input"] for n in run["nodes"] if n["node_id"] == "draft"]
    first = "Improve this text: teh cat (my key is [redacted:OPENAI_API_KEY])"
    assert drafts[0] == {"messages": [{"role": "user", "content": first}]}
    assert drafts[1]["messages"][0]["content"] == f"Improve this text: echo: {first}"
    critic = next(n for n in run["nodes"] if n["node_id"] == "critic")["details"]["input"]
    assert [m["role"] for m in critic["messages"]] == ["system", "user"]
    assert "- revise: the text needs another pass" in critic["messages"][0]["content"]
    assert critic["messages"][1]["content"] == f"echo: {first}"
    assert run["initial_state"] == state  # what the caller sent, as sent
    assert canary not in json.dumps({**run, "initial_state": None})
    page = admin_client.get(f"/admin/executions/execution/{quote(body['execution_id'])}/change/")
    given = re.findall(r'<pre class="af-given">(.*?)</pre>', page.content.decode(), re.S)
    assert len(given) == 4  # the drafts and the critics; the input and publish read the state
    assert given[0] == f"[user]\n{escape(first)}"
    assert given[1].startswith("[system]\n") and f"[user]\necho: {escape(first)}" in given[1]
    assert not [text for text in given if canary in text]


def test_a_db_attempt_records_its_query_and_bound_parameters(
    executor_key: IssuedKey, settings, tmp_path
) -> None:
    from tenants.management.commands.demo_catalogue import write_catalogue

    settings.AGENTFLOW_SQLITE_ROOT = tmp_path
    write_catalogue(tmp_path / f"t{executor_key.row.tenant_id}" / "demo.sqlite3")
    spec = example("offline-demo")
    sql = "SELECT name FROM products WHERE name <> :skip ORDER BY name"
    spec["nodes"][2]["metadata"] |= {"query": sql, "params": {"skip": "{{ user_input }}"}}
    body = execute(executor_key, spec, {"user_input": "any prices?"}).json()
    assert body["status"] == "success", body
    nodes = {n["node_id"]: n for n in trace(executor_key, body["execution_id"])["nodes"]}
    assert nodes["catalogue"]["details"]["input"] == {
        "query": sql,
        "params": {"skip": "any prices?"},
    }
    assert "input" not in nodes["router"]["details"]  # a keyword router reads the state
