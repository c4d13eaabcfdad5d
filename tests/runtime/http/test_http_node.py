"""The http source and node against local servers: auth from env, retries, OAuth2, templates.

Every server is on 127.0.0.1, which the operator trusts here (`TRUSTED`) and every source names
in its allowed_hosts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.egress import EgressPolicy
from runtime.errors import MissingCredential, ProviderError
from runtime.http_auth import TokenCache
from runtime.node_metadata import HTTPMetadata
from runtime.nodes import NODE_TYPES
from runtime.nodes.http import HTTPNode
from runtime.providers.http import HTTPSource, InvalidPath
from runtime.runner import run_workflow
from runtime.source_configs import HTTPConfig
from runtime.spec import SourceSpec
from runtime.validation import validate_spec
from tests.runtime.http.servers import Seen, Server, json_reply, serving

EXAMPLE = Path(__file__).parents[3] / "examples" / "http-enrich.json"
TRUSTED = frozenset({"127.0.0.1"})


def local(config: HTTPConfig) -> EgressPolicy:
    """The operator trusts loopback; the source's allowed_hosts narrows that."""
    return EgressPolicy.of(TRUSTED, config.allowed_hosts)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(server: Server, env: dict[str, str] | None = None, **config: Any) -> HTTPSource:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    cfg = HTTPConfig.model_validate(
        {"base_url": f"{server.url}/api", "allowed_hosts": ["127.0.0.1"], **config}
    )
    made = HTTPSource(
        cfg, (env or {}).get, egress=local(cfg), sleep=sleep, token_cache=TokenCache()
    )
    made.slept = slept  # type: ignore[attr-defined]
    return made


def get(src: HTTPSource, path: str = "/x", **kwargs: Any) -> Any:
    return asyncio.run(src.request("GET", path, **kwargs))


def statuses(*replies: tuple[int, dict[str, str]]) -> Any:
    queue = list(replies)

    def reply(seen: Seen) -> Any:
        status, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        return json_reply(status, {"status": status}, **headers)

    return reply


def test_a_503_is_retried_with_backoff_and_retry_after_then_succeeds() -> None:
    with serving() as server:
        server.route("/api/x", statuses((503, {}), (429, {"Retry-After": "3"}), (200, {})))
        src = source(server)
        response = get(src, retries=2)
    assert (response.status, response.body, response.attempts) == (200, {"status": 200}, 3)
    assert src.slept == [0.5, 3.0]  # type: ignore[attr-defined]


def test_a_400_is_not_retried() -> None:
    with serving() as server:
        server.route("/api/x", statuses((400, {})))
        response = get(source(server), retries=3)
    assert response.status == 400 and len(server.seen) == 1


def test_connection_failures_are_retried_then_reported_as_retryable() -> None:
    with serving() as server:
        src = source(server, max_retries=2)
    with pytest.raises(ProviderError, match=r"Could not reach 127\.0\.0\.1") as raised:
        get(src)
    assert raised.value.retryable
    assert src.slept == [0.5, 1.0]  # type: ignore[attr-defined]


AUTH_CASES = [
    ({"auth_method": "bearer", "token_env": "T"}, {"T": "tok"}, "authorization", "Bearer tok"),
    ({"auth_method": "api_key", "api_key_env": "K"}, {"K": "key1"}, "x-api-key", "key1"),
    (
        {"auth_method": "api_key", "api_key_env": "K", "api_key_header": "X-Key"},
        {"K": "k2"},
        "x-key",
        "k2",
    ),
    (
        {"auth_method": "basic", "username": "ann", "password_env": "P"},
        {"P": "pw"},
        "authorization",
        "Basic " + base64.b64encode(b"ann:pw").decode(),
    ),
    (
        {"auth_method": "basic", "username_env": "U", "password_env": "P"},
        {"U": "bo", "P": "pw"},
        "authorization",
        "Basic " + base64.b64encode(b"bo:pw").decode(),
    ),
]


@pytest.mark.parametrize(("config", "env", "header", "value"), AUTH_CASES)
def test_credentials_come_from_the_environment(
    config: dict[str, Any], env: dict[str, str], header: str, value: str
) -> None:
    with serving() as server:
        server.route("/api/x", statuses((200, {})))
        get(source(server, env, **config))
    assert server.seen[0].headers[header] == value


def test_an_api_key_can_go_in_the_query_and_never_reaches_a_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with serving() as server:
        server.route("/api/x", statuses((200, {})))
        config = {"auth_method": "api_key", "api_key_env": "K", "api_key_query": "api_key"}
        get(source(server, {"K": "qk3y"}, **config), query={"q": "1"})
    assert parse_qs(server.seen[0].path.split("?")[1]) == {"q": ["1"], "api_key": ["qk3y"]}
    assert "qk3y" not in caplog.text


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        ({"auth_method": "bearer", "token_env": "CRM_TOKEN"}, "CRM_TOKEN"),
        ({"auth_method": "basic", "username": "a", "password_env": "PW"}, "PW"),
        (
            {
                "auth_method": "oauth2_client_credentials",
                "token_url": "http://127.0.0.1:9/t",
                "client_id": "c",
                "client_secret_env": "SECRET",
            },
            "SECRET",
        ),
    ],
)
def test_a_missing_variable_is_named(config: dict[str, Any], missing: str) -> None:
    with serving() as server, pytest.raises(MissingCredential, match=missing):
        get(source(server, {}, **config))
    assert server.seen == []


def test_an_oauth2_token_is_fetched_once_reused_and_refetched_after_expiry() -> None:
    clock = Clock()
    tokens = iter(["t1", "t2"])
    with serving() as server:
        server.route(
            "/token",
            lambda seen: json_reply(200, {"access_token": next(tokens), "expires_in": 100}),
        )
        server.route("/api/x", statuses((200, {})))
        cfg = HTTPConfig(
            base_url=f"{server.url}/api",
            auth_method="oauth2_client_credentials",
            token_url=f"{server.url}/token",
            client_id="cid",
            client_secret_env="SECRET",
            scope="read",
            allowed_hosts=["127.0.0.1"],
        )
        src = HTTPSource(
            cfg, {"SECRET": "sh"}.get, egress=local(cfg), token_cache=TokenCache(clock)
        )
        get(src)
        get(src)
        clock.now += 71  # within 30 s of expiry
        get(src)
    token_calls = [s for s in server.seen if s.path == "/token"]
    api_auth = [s.headers["authorization"] for s in server.seen if s.path == "/api/x"]
    assert len(token_calls) == 2
    assert api_auth == ["Bearer t1", "Bearer t1", "Bearer t2"]
    form = parse_qs(token_calls[0].body.decode())
    assert form == {"grant_type": ["client_credentials"], "scope": ["read"]}
    assert (
        token_calls[0].headers["authorization"] == "Basic " + base64.b64encode(b"cid:sh").decode()
    )


def test_a_failing_token_endpoint_is_a_clear_error_without_the_secret() -> None:
    with serving() as server:
        server.route("/token", lambda seen: json_reply(401, {"error": "invalid_client"}))
        config = {
            "auth_method": "oauth2_client_credentials",
            "token_url": f"{server.url}/token",
            "client_id": "cid",
            "client_secret_env": "S",
        }
        with pytest.raises(ProviderError, match="invalid_client") as raised:
            get(source(server, {"S": "sup3r"}, **config))
    assert "sup3r" not in str(raised.value) and not raised.value.retryable


def node(server: Server, **meta: Any) -> tuple[HTTPNode, RunContext]:
    spec = SourceSpec.model_validate(
        {
            "id": "api",
            "kind": "http",
            "config": {"base_url": f"{server.url}/api", "allowed_hosts": ["127.0.0.1"]},
        }
    )
    made = HTTPNode("call", HTTPMetadata.model_validate({"source": "api", **meta}), {"api": spec})

    async def no_sleep(seconds: float) -> None:
        pass

    def factory(config: HTTPConfig, env: Any, egress: EgressPolicy) -> HTTPSource:
        return HTTPSource(config, env, egress=egress, sleep=no_sleep)

    context = RunContext(providers={"http": factory}, env=lambda _name: None, trusted_hosts=TRUSTED)
    return made, context


def test_state_values_fill_one_path_segment_and_cannot_leave_it() -> None:
    with serving() as server:
        made, ctx = node(server, path="/customers/{{ id }}/orders")
        out = asyncio.run(made.run({"id": "../admin?x=1#y"}, ctx))
    assert out.result["status"] == 404  # a 4xx is a result the workflow can branch on
    assert server.seen[0].path == "/api/customers/..%2Fadmin%3Fx%3D1%23y/orders"


@pytest.mark.parametrize("value", ["..", "."])
def test_a_dot_segment_from_the_state_is_refused(value: str) -> None:
    with serving() as server:
        made, ctx = node(server, path="/customers/{{ id }}")
        with pytest.raises(InvalidPath):
            asyncio.run(made.run({"id": value}, ctx))
    assert server.seen == []


def test_query_headers_and_json_body_are_rendered_from_the_state() -> None:
    with serving() as server:
        server.route("/api/orders", lambda seen: json_reply(201, json.loads(seen.body)))
        made, ctx = node(
            server,
            method="POST",
            path="/orders",
            query={"q": "{{ q }}", "n": 3, "b": True},
            headers={"X-Request": "r-{{ q }}"},
            body={"name": "{{ who }}", "items": ["{{ q }}", 2], "ok": None},
        )
        out = asyncio.run(made.run({"q": "a b&c", "who": "Ann"}, ctx))
    assert out.result == {"status": 201, "body": {"name": "Ann", "items": ["a b&c", 2], "ok": None}}
    seen = server.seen[0]
    assert parse_qs(seen.path.split("?")[1]) == {"q": ["a b&c"], "n": ["3"], "b": ["true"]}
    assert seen.headers["x-request"] == "r-a b&c"
    assert seen.headers["content-type"] == "application/json"


def test_a_5xx_after_the_retries_fails_the_node_as_retryable() -> None:
    with serving() as server:
        server.route("/api/x", statuses((502, {})))
        made, ctx = node(server, path="/x", retries=1)
        with pytest.raises(ProviderError, match="HTTP 502 after 2 attempt") as raised:
            asyncio.run(made.run({}, ctx))
    assert raised.value.retryable and raised.value.status == 502
    assert len(server.seen) == 2


def test_the_host_header_cannot_be_set_by_a_node() -> None:
    with serving() as server:
        made, ctx = node(server, headers={"Host": "metadata.google.internal"})
        with pytest.raises(Exception, match="set by AgentFlow"):
            asyncio.run(made.run({}, ctx))


def test_the_http_enrich_example_runs_end_to_end() -> None:
    with serving() as server:
        server.route(
            "/api/customers/c-42",
            lambda seen: json_reply(
                200,
                {"name": "Ada", "plan": "pro"}
                if seen.headers.get("authorization") == "Bearer crm-tok"
                else {"error": "unauthorised"},
            ),
        )
        raw = json.loads(EXAMPLE.read_text())
        raw["sources"][0]["config"] |= {
            "base_url": f"{server.url}/api",
            "allowed_hosts": ["127.0.0.1"],
        }
        validated = validate_spec(raw)
        assert validated.valid, validated.to_dict()["errors"]
        state = {"user_input": "upgrade me", "metadata": {"customer_id": "c-42"}}
        workflow = compile_workflow(validated, state_keys=state.keys(), node_types=NODE_TYPES)
        ctx = RunContext(
            providers={"http": HTTPSource}, env={"CRM_TOKEN": "crm-tok"}.get, trusted_hosts=TRUSTED
        )
        outcome = asyncio.run(run_workflow(workflow, state, ctx))
    assert outcome.status == "succeeded", outcome.error
    answer = {"name": "Ada", "plan": "pro"}
    assert outcome.final_state["http_result"] == {"status": 200, "body": answer}
    assert outcome.final_state["final_output"] == "Ada (pro): upgrade me"
