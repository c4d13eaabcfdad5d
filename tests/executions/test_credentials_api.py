"""Credentials through the API: a granted variable goes only where its grant binds it, and its
value never comes back in a response, a trace or an event (issue 13).

A local listener stands for the host a tenant points a source at: an echo endpoint that answers
with the request it received (its path and headers), and an OAuth2 token endpoint.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.test import override_settings

from agentflow_site.logging import scrub_text
from executions.models import ExecutionEvent
from runtime.grants import Grants
from tenants.admin import TenantForm
from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeOpenAIServer
from tests.runtime.http.servers import Seen, Server, json_reply, serving
from tests.site.test_settings import manage

pytestmark = pytest.mark.django_db
URL = "/api/v1/workflows/execute"
VAR = "CRM_TOKEN"
CANARY = "crm-canary-7d3f9b1e5a"
ACCESS_TOKEN = "at-canary-0b9e4c7d2f"
LLM_KEY = "sk-canary-openai-0c4e8a2f6b"


def _echo(seen: Seen) -> Any:
    return json_reply(200, {"path": seen.path, "headers": seen.headers})


@pytest.fixture
def listener() -> Iterator[Server]:
    """An echo endpoint (`/api/echo`) and a token endpoint (`/token`) on 127.0.0.1, which the
    operator lets this tenant's sources reach."""
    with serving() as server, override_settings(AGENTFLOW_TRUSTED_HOSTS=["127.0.0.1"]):
        server.route("/api/echo", _echo)
        server.route(
            "/token",
            lambda seen: json_reply(200, {"access_token": ACCESS_TOKEN, "expires_in": 3600}),
        )
        yield server


def auth(method: str, url: str, name: str = VAR) -> dict[str, Any]:
    return {
        "bearer": {"auth_method": "bearer", "token_env": name},
        "basic": {"auth_method": "basic", "username": "ada", "password_env": name},
        "api_key": {"auth_method": "api_key", "api_key_env": name},
        "api_key_query": {"auth_method": "api_key", "api_key_env": name, "api_key_query": "key"},
        "oauth2": {
            "auth_method": "oauth2_client_credentials",
            "token_url": f"{url}/token",
            "client_id": "agentflow",
            "client_secret_env": name,
        },
    }[method]


FIELD = {
    "bearer": "token_env",
    "basic": "password_env",
    "api_key": "api_key_env",
    "api_key_query": "api_key_env",
    "oauth2": "client_secret_env",
}
METHODS = list(FIELD)


def spec(url: str, credentials: dict[str, Any]) -> dict[str, Any]:
    config = {"base_url": f"{url}/api", "allowed_hosts": ["127.0.0.1"], "max_retries": 0}
    return {
        "name": "echo",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "call", "type": "http", "metadata": {"source": "api", "path": "/echo"}},
        ],
        "edges": [{"from": "input", "to": "call"}],
        "sources": [{"id": "api", "kind": "http", "config": {**config, **credentials}}],
    }


def execute(key: IssuedKey, workflow: dict[str, Any]) -> Any:
    body = {"workflow": workflow, "initial_state": {"user_input": "hi"}}
    return client_for(key).post(URL, body, format="json")


def grant(tenant: Any, *entries: str) -> None:
    tenant.allowed_env = list(entries)
    tenant.save()


# --- refused: a credential goes nowhere its grant does not bind it -------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("entry", ["OPENAI_API_KEY", "OPENAI_API_KEY@openai"])
def test_an_llm_key_cannot_be_sent_to_any_other_host(
    tenant, executor_key: IssuedKey, listener: Server, monkeypatch, method: str, entry: str
) -> None:
    grant(tenant, entry)
    monkeypatch.setenv("OPENAI_API_KEY", LLM_KEY)
    response = execute(
        executor_key, spec(listener.url, auth(method, listener.url, "OPENAI_API_KEY"))
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["type"] == "forbidden_secret_ref"
    assert error["path"] == f"/sources/0/config/{FIELD[method]}"
    assert "127.0.0.1 (an http source)" in error["message"]
    assert "OPENAI_API_KEY@http:127.0.0.1" in error["message"]  # what the operator could grant
    assert listener.seen == []
    assert LLM_KEY not in response.content.decode()


def test_a_connection_string_cannot_be_sent_as_a_password(
    tenant, executor_key: IssuedKey, listener: Server, monkeypatch
) -> None:
    grant(tenant, "SHOP_DSN@postgres")
    monkeypatch.setenv("SHOP_DSN", "postgresql://shop:pa55-canary-w0rd@db.internal/shop")
    response = execute(executor_key, spec(listener.url, auth("basic", listener.url, "SHOP_DSN")))
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["type"] == "forbidden_secret_ref"
    assert "postgres sources only" in error["message"]
    assert listener.seen == []


@pytest.mark.parametrize("method", METHODS)
def test_a_grant_narrowed_after_validation_stops_the_run_before_anything_is_sent(
    tenant, executor_key: IssuedKey, listener: Server, monkeypatch, method: str
) -> None:
    """The run checks the binding again where the value is read, with the destination it is
    about to be sent to: the grant changed between validation and the run."""
    grant(tenant, f"{VAR}@http:127.0.0.1")
    monkeypatch.setenv(VAR, CANARY)
    narrowed = Grants.parse([f"{VAR}@http:crm.example.com"])
    monkeypatch.setattr("executions.services.tenant_grants", lambda _tenant: narrowed)
    response = execute(executor_key, spec(listener.url, auth(method, listener.url)))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "forbidden_secret_ref"
    assert body["error"]["node_id"] == "call"
    assert "crm.example.com" in body["error"]["message"]
    assert listener.seen == []  # neither the API nor the token endpoint was called


# --- bound: the credential is sent, and its echo is redacted everywhere -------------------------


def _sent(method: str, seen: list[Seen]) -> None:
    """The listener got the real credential: the grant lets it go there."""
    pair = base64.b64encode(f"ada:{CANARY}".encode()).decode()
    client = base64.b64encode(f"agentflow:{CANARY}".encode()).decode()
    headers = seen[-1].headers
    expected = {
        "bearer": lambda: headers["authorization"] == f"Bearer {CANARY}",
        "basic": lambda: headers["authorization"] == f"Basic {pair}",
        "api_key": lambda: headers["x-api-key"] == CANARY,
        "api_key_query": lambda: f"key={CANARY}" in seen[-1].path,
        "oauth2": lambda: (
            seen[0].headers["authorization"] == f"Basic {client}"
            and headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        ),
    }
    assert expected[method](), [(s.path, s.headers) for s in seen]


def read_stream(response: Any) -> str:
    """A streamed response's body; the events stream is an async iterator, read here on this
    thread's database connection (async_to_sync keeps the ORM calls on it)."""

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)().decode()


def _events(key: IssuedKey, execution_id: str) -> str:
    response = client_for(key).get(f"/api/v1/executions/{execution_id}/events")
    assert response.status_code == 200
    streamed = read_stream(response)
    assert "event: end" in streamed
    return streamed


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in (CANARY, ACCESS_TOKEN, base64.b64encode(f"ada:{CANARY}".encode()).decode()):
            assert secret not in text


@pytest.mark.parametrize("method", METHODS)
def test_a_bound_credential_is_sent_and_its_echo_is_redacted_everywhere(
    tenant, executor_key: IssuedKey, listener: Server, monkeypatch, method: str
) -> None:
    grant(tenant, f"{VAR}@http:127.0.0.1")
    monkeypatch.setenv(VAR, CANARY)
    response = execute(executor_key, spec(listener.url, auth(method, listener.url)))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success", body["error"]
    _sent(method, listener.seen)
    echoed = json.dumps(body["final_state"]["http_result"]["body"])
    assert f"[redacted:{VAR}]" in echoed
    execution_id = body["execution_id"]
    trace = client_for(executor_key).get(f"/api/v1/executions/{execution_id}")
    events = _events(executor_key, execution_id)
    rows = json.dumps(list(ExecutionEvent.objects.values_list("data", flat=True)))
    assert f"[redacted:{VAR}]" in json.dumps(trace.json()["nodes"])
    assert_clean(response.content.decode(), trace.content.decode(), events, rows)


# --- an LLM key, bound to its provider, never echoed back ----------------------------------------


@pytest.fixture
def llm(tenant, openai_server: FakeOpenAIServer, monkeypatch) -> Iterator[FakeOpenAIServer]:
    grant(tenant, "OPENAI_API_KEY@openai")
    monkeypatch.setenv("OPENAI_API_KEY", LLM_KEY)
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS={"openai": openai_server.base_url}):
        yield openai_server


def llm_spec(stream: bool = False) -> dict[str, Any]:
    return {
        "name": "llm",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "writer",
                "type": "llm",
                "metadata": {"source": "gpt", "prompt": "{{ user_input }}", "stream": stream},
            },
        ],
        "edges": [{"from": "input", "to": "writer"}],
        "sources": [
            {
                "id": "gpt",
                "kind": "openai",
                "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
            }
        ],
    }


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_quoting_the_key_is_redacted_in_the_state_trace_and_streamed_tokens(
    executor_key: IssuedKey, llm: FakeOpenAIServer, stream: bool
) -> None:
    llm.script(text=f"Your key is {LLM_KEY}, keep it safe.")
    response = execute(executor_key, llm_spec(stream))
    body = response.json()
    assert body["status"] == "success", body["error"]
    assert llm.last_request.headers["authorization"] == f"Bearer {LLM_KEY}"
    assert body["final_state"]["text_result"] == (
        "Your key is [redacted:OPENAI_API_KEY], keep it safe."
    )
    trace = client_for(executor_key).get(f"/api/v1/executions/{body['execution_id']}")
    events = _events(executor_key, body["execution_id"])
    if stream:
        assert "event: token" in events and "[redacted:OPENAI_API_KEY]" in events
    for text in (response.content.decode(), trace.content.decode(), events):
        assert LLM_KEY not in text


def test_a_provider_error_quoting_the_key_is_redacted(
    executor_key: IssuedKey, llm: FakeOpenAIServer
) -> None:
    llm.script(times=3, status=401, message=f"Incorrect API key provided: {LLM_KEY}.")
    response = execute(executor_key, llm_spec())
    body = response.json()
    assert body["status"] == "failed"
    trace = client_for(executor_key).get(f"/api/v1/executions/{body['execution_id']}")
    for text in (response.content.decode(), trace.content.decode()):
        assert LLM_KEY not in text


# --- grants as the operator writes them ----------------------------------------------------------


def test_a_grant_that_cannot_be_kept_stops_the_server_from_starting() -> None:
    result = manage("check", AGENTFLOW_ALLOWED_ENV="OPENAI_API_KEY@openai,CRM_TOKEN@http")
    assert result.returncode != 0
    assert "AGENTFLOW_ALLOWED_ENV" in result.stderr and "http:api.example.com" in result.stderr
    ok = manage("check", AGENTFLOW_ALLOWED_ENV='["K@openai", {"env": "D", "to": ["postgres"]}]')
    assert ok.returncode == 0, ok.stderr


def test_createtenant_and_the_admin_refuse_a_grant_that_cannot_be_kept(db: None) -> None:
    with pytest.raises(CommandError, match="names the host"):
        call_command("createtenant", "acme", "--allow-env", "CRM_TOKEN@http:https://crm.io")
    form = TenantForm(
        data={"slug": "acme", "name": "Acme", "allowed_env": '["DSN@postgres:db.internal"]'}
    )
    assert not form.is_valid()
    assert "bind it to the kind alone" in str(form.errors["allowed_env"])


def test_a_tenant_entry_that_does_not_parse_grants_nothing(
    tenant, executor_key: IssuedKey, listener: Server, monkeypatch
) -> None:
    grant(tenant, f"{VAR}@http")  # written around createtenant and the admin
    monkeypatch.setenv(VAR, CANARY)
    response = execute(executor_key, spec(listener.url, auth("bearer", listener.url)))
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "forbidden_secret_ref"
    assert listener.seen == []


def test_a_value_a_run_read_is_masked_in_the_logs_whatever_its_name(
    tenant, executor_key: IssuedKey, listener: Server, monkeypatch
) -> None:
    name = "AGENTFLOW_T_ACME_CRM"  # nothing in the name says it is a credential
    grant(tenant, f"{name}@http:127.0.0.1")
    monkeypatch.setenv(name, CANARY)
    response = execute(executor_key, spec(listener.url, auth("bearer", listener.url, name)))
    assert response.json()["status"] == "success"
    assert scrub_text(f"oops: {CANARY}") == f"oops: [redacted:{name}]"
