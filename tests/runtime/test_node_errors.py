"""Failures a spec, its state or its sources' settings can cause get a named error, never
`internal_error`; each message names the field to change and never quotes a secret."""

import asyncio
from typing import Any

import httpx2
import openai
import pytest

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.egress import EgressPolicy, EgressRefused, check_url, decode_body
from runtime.nodes import NODE_TYPES
from runtime.providers._errors import retry_after_seconds
from runtime.providers.openai import translate_openai_error
from runtime.runner import RunOutcome, run_workflow
from runtime.validation import validate_spec
from tests.fakes.providers import FakeOpenAIServer
from tests.runtime.http.servers import Server, serving

LOCAL = frozenset({"127.0.0.1"})
KEY = "sk-test-key-0123456789"


def spec(node: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "t",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input", "metadata": {"required": []}},
            node,
        ],
        "edges": [{"from": "input", "to": node["id"]}],
        "sources": [source],
    }


def run(
    raw: dict[str, Any], state: dict[str, Any], env: dict[str, str] | None = None
) -> RunOutcome:
    validated = validate_spec(raw)
    assert validated.valid, validated.to_dict()["errors"]
    workflow = compile_workflow(validated, state_keys=state.keys(), node_types=NODE_TYPES)
    lookup = (env if env is not None else {"KEY": KEY}).get
    ctx = RunContext(env=lookup, trusted_provider_hosts=LOCAL, trusted_hosts=LOCAL)
    return asyncio.run(run_workflow(workflow, state, ctx))


def error_of(outcome: RunOutcome) -> tuple[str, str]:
    assert outcome.status == "failed" and outcome.error is not None
    return outcome.error["code"], outcome.error["message"]


# --- http ---------------------------------------------------------------------------------------


def http_source(server: Server, **config: Any) -> dict[str, Any]:
    base = {"base_url": f"{server.url}/api", "allowed_hosts": ["127.0.0.1"]}
    return {"id": "api", "kind": "http", "config": {**base, **config}}


def http_node(**meta: Any) -> dict[str, Any]:
    return {"id": "call", "type": "http", "metadata": {"source": "api", "path": "/x", **meta}}


@pytest.mark.parametrize(
    ("headers", "state", "named"),
    [
        ({"X-Name": "{{ who }}"}, {"who": "Zoë"}, "'X-Name'"),  # non-ASCII value
        ({"X-Name": "{{ who }}"}, {"who": "a\x00b"}, "'X-Name'"),  # control character
        ({"X Name": "v"}, {}, "'X Name'"),  # a space in the name
        ({"Ünicode": "v"}, {}, "'Ünicode'"),  # a non-ASCII name
    ],
)
def test_an_http_header_http_cannot_carry_is_an_invalid_request_naming_it(
    headers: dict[str, str], state: dict[str, Any], named: str
) -> None:
    with serving() as server:
        outcome = run(spec(http_node(headers=headers), http_source(server)), state)
    code, message = error_of(outcome)
    assert code == "invalid_request"
    assert "metadata.headers" in message and named in message
    assert server.seen == []


def test_spaces_around_a_rendered_header_value_are_not_part_of_it() -> None:
    with serving() as server:
        node = http_node(headers={"X-Name": " {{ who }}\t"})
        outcome = run(spec(node, http_source(server)), {"who": "Ada"})
    assert outcome.status == "succeeded", outcome.error
    assert server.seen[0].headers["x-name"] == "Ada"


def test_a_credential_http_cannot_carry_is_named_and_never_quoted() -> None:
    token = "tok-line\nbreak"
    with serving() as server:
        source = http_source(server, auth_method="bearer", token_env="TOK")
        outcome = run(spec(http_node(), source), {}, env={"TOK": token})
    code, message = error_of(outcome)
    assert code == "invalid_credential"
    assert "'Authorization'" in message and "token_env" in message
    assert "tok-line" not in message
    assert server.seen == []


def test_a_deeply_nested_json_body_comes_back_as_text() -> None:
    deep = "[" * 100_000
    assert decode_body(deep.encode(), httpx2.Headers({"content-type": "application/json"})) == deep


# --- provider sources ---------------------------------------------------------------------------


def openai_source(server: FakeOpenAIServer, **config: Any) -> dict[str, Any]:
    base = {"model_name": "gpt-4o-mini", "api_key_env": "KEY", "base_url": server.base_url}
    return {"id": "gpt", "kind": "openai", "config": {**base, "max_retries": 0, **config}}


def llm_node(**meta: Any) -> dict[str, Any]:
    return {"id": "w", "type": "llm", "metadata": {"source": "gpt", "prompt": "hi", **meta}}


@pytest.mark.parametrize(
    "key", ["sk-zoë-0123", "sk-line\nbreak\n", "sk-nul\x00byte", "sk-trailing-space "]
)
def test_an_api_key_no_header_can_carry_is_an_invalid_credential_naming_its_variable(
    openai_server: FakeOpenAIServer, key: str
) -> None:
    outcome = run(spec(llm_node(), openai_source(openai_server)), {}, env={"KEY": key})
    code, message = error_of(outcome)
    assert code == "invalid_credential"
    assert "KEY" in message and "sk-" not in message
    assert openai_server.requests == []


def test_a_non_ascii_organization_is_an_invalid_request(openai_server: FakeOpenAIServer) -> None:
    outcome = run(spec(llm_node(), openai_source(openai_server, organization="Zoë")), {})
    code, message = error_of(outcome)
    assert code == "invalid_request"
    assert "organization" in message and "U+00EB" in message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999/v1", "http://[::1/v1", "http://127.0.0.1:port/v1"]
)
def test_a_base_url_that_is_not_a_url_is_refused_naming_the_field(
    openai_server: FakeOpenAIServer, url: str
) -> None:
    outcome = run(spec(llm_node(), openai_source(openai_server, base_url=url)), {})
    code, message = error_of(outcome)
    assert code == "egress_refused"
    assert "base_url" in message and "not a valid URL" in message


def test_a_host_name_the_idna_codec_refuses_is_refused() -> None:
    with pytest.raises(EgressRefused, match="not a valid host name"):
        check_url("https://a..example.com/v1", EgressPolicy())


def test_json_nested_too_deeply_to_read_is_an_invalid_response(
    openai_server: FakeOpenAIServer,
) -> None:
    openai_server.script(text="[" * 100_000)
    outcome = run(spec(llm_node(response_format="json"), openai_source(openai_server)), {})
    code, message = error_of(outcome)
    assert code == "invalid_response" and "nested too deeply" in message


def llm_router() -> dict[str, Any]:
    meta = {"strategy": "llm", "source": "gpt", "intents": {"a": "A"}, "default": "a"}
    return {"id": "r", "type": "router", "metadata": meta}


def semantic_router() -> dict[str, Any]:
    meta = {"strategy": "semantic", "source": "gpt", "examples": {"a": ["hello"]}, "default": "a"}
    return {"id": "r", "type": "router", "metadata": meta}


@pytest.mark.parametrize("router", [llm_router, semantic_router])
def test_a_lone_surrogate_in_the_text_to_route_is_an_invalid_request(
    openai_server: FakeOpenAIServer, router: Any
) -> None:
    state = {"user_input": "bad \ud800 text"}  # what JSON "\ud800" in a request body becomes
    outcome = run(spec(router(), openai_source(openai_server)), state)
    code, message = error_of(outcome)
    assert code == "invalid_request" and "U+D800" in message
    assert openai_server.requests == []


def test_embeddings_that_do_not_match_the_texts_are_a_provider_error(
    openai_server: FakeOpenAIServer,
) -> None:
    one = {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}
    usage = {"prompt_tokens": 1, "total_tokens": 1}
    openai_server.script(json={"object": "list", "data": [one], "model": "e", "usage": usage})
    outcome = run(spec(semantic_router(), openai_source(openai_server)), {"user_input": "hi"})
    code, message = error_of(outcome)
    assert code == "provider_error" and "1 embeddings came for 2 texts" in message


def test_an_error_event_inside_a_stream_is_a_retryable_provider_error() -> None:
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
    error = translate_openai_error("OpenAI", 60)(
        openai.APIError("server_error", request, body=None)
    )
    assert error is not None and error.code == "provider_error" and error.retryable


@pytest.mark.parametrize(
    "value", ["Fri, 31 Dec 99999 23:59:59 GMT", "Mon, 01 Jan 10000000000 00:00:00 GMT"]
)
def test_a_retry_after_date_out_of_the_calendar_is_ignored(value: str) -> None:
    assert retry_after_seconds({"retry-after": value}) is None


# --- input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"$ref": "https://schemas.example.com/state.json"},
        {"properties": {"a": {"$ref": "#/$defs/missing"}}},
    ],
)
def test_an_input_schema_whose_refs_go_nowhere_is_an_invalid_schema(
    schema: dict[str, Any],
) -> None:
    raw = {
        "name": "t",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input", "metadata": {"required": [], "schema": schema}}],
        "edges": [],
    }
    validated = validate_spec(raw)
    assert validated.valid, validated.to_dict()["errors"]
    workflow = compile_workflow(validated, state_keys=["a"])
    outcome = asyncio.run(run_workflow(workflow, {"a": 1}, RunContext(providers={})))
    code, message = error_of(outcome)
    assert code == "invalid_schema" and "metadata.schema" in message
