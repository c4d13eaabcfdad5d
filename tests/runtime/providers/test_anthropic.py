"""The anthropic adapter against a fake Anthropic server, through the real anthropic SDK."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import MissingCredential, ProviderError
from runtime.providers.anthropic import DEFAULT_MAX_TOKENS, JSON_INSTRUCTION, AnthropicProvider
from runtime.source_configs import AnthropicConfig
from tests.fakes.providers import COMPLETION_TOKENS, PROMPT_TOKENS, FakeAnthropicServer
from tests.runtime.providers.helpers import ENV, LOCAL, NO_ENV, SECRET, Tokens, ask, run


def provider(
    server: FakeAnthropicServer,
    *,
    env: Any = ENV,
    timeout: float = 5.0,
    max_retries: int = 0,
    **config: Any,
) -> AnthropicProvider:
    settings: dict[str, Any] = {
        "model_name": "claude-test",
        "api_key_env": "PROVIDER_KEY",
        "base_url": server.url,
        **config,
    }
    # AnthropicConfig has no timeout/max_retries fields (SPEC §1): the adapter takes them directly.
    source = AnthropicConfig(**settings)
    return AnthropicProvider(source, env, egress=LOCAL, timeout=timeout, max_retries=max_retries)


def failure(server: FakeAnthropicServer, **options: Any) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        run(provider(server, **options).chat(ask("hello")))
    return raised.value


def test_it_answers_with_the_text_and_the_providers_token_counts(anthropic_server):
    result = run(provider(anthropic_server).chat(ask("hello world")))

    assert result.text == "echo: hello world"
    assert result.model == "claude-test"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert result.finish_reason == "end_turn"


def test_it_sends_the_key_the_system_prompt_apart_and_a_max_tokens(anthropic_server):
    run(provider(anthropic_server, temperature=0.3).chat(ask("hi", system="be brief")))

    sent = anthropic_server.last_request
    assert sent.path == "/v1/messages"
    # anthropic 2.x sends an API key as a bearer token (1.x used x-api-key).
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert "anthropic-version" in sent.headers
    assert sent.json["model"] == "claude-test"
    assert sent.json["system"] == "be brief"
    assert sent.json["messages"] == [{"role": "user", "content": "hi"}]
    assert sent.json["max_tokens"] == DEFAULT_MAX_TOKENS
    assert sent.json["temperature"] == 0.3


def test_the_nodes_max_tokens_wins_and_top_p_goes_only_without_temperature(anthropic_server):
    source = provider(anthropic_server, max_tokens=100)
    run(source.chat(ask("hi", max_tokens=20, top_p=0.5, frequency_penalty=1.0)))

    sent = anthropic_server.last_request.json
    assert (sent["max_tokens"], sent["top_p"]) == (20, 0.5)
    assert "temperature" not in sent
    assert "frequency_penalty" not in sent


def test_a_json_answer_is_asked_for_in_the_system_prompt(anthropic_server):
    run(provider(anthropic_server).chat(ask("give json", system="sys", response_format="json")))

    assert anthropic_server.last_request.json["system"] == f"sys\n\n{JSON_INSTRUCTION}"


def test_streamed_deltas_reach_on_token_in_order_and_usage_is_still_reported(anthropic_server):
    tokens = Tokens()
    request = ask("one two", stream=True, temperature=0.5)
    result = run(provider(anthropic_server).chat(request, on_token=tokens))

    assert tokens.received == ["echo: ", "one ", "two"]
    assert result.text == "echo: one two"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert anthropic_server.last_request.json["stream"] is True
    assert anthropic_server.last_request.json["temperature"] == 0.5


def test_a_rate_limit_is_retryable_and_says_how_long_to_wait(anthropic_server):
    anthropic_server.script(status=429, headers={"Retry-After": "1"}, message="Number of requests")

    error = failure(anthropic_server)

    assert (error.status, error.retryable, error.retry_after) == (429, True, 1.0)
    assert "Number of requests" in error.message


@pytest.mark.parametrize("status", [500, 529])
def test_server_errors_and_overload_are_retryable(anthropic_server, status):
    anthropic_server.script(status=status)

    error = failure(anthropic_server)

    assert (error.status, error.retryable) == (status, True)


def test_a_bad_request_is_not_retryable_and_carries_the_providers_message(anthropic_server):
    anthropic_server.script(status=400, message="max_tokens: must be at most 64000")

    error = failure(anthropic_server)

    assert (error.status, error.retryable) == (400, False)
    assert "max_tokens: must be at most 64000" in error.message


def test_a_slow_answer_times_out_as_a_retryable_error(anthropic_server):
    anthropic_server.script(delay=2.0)

    error = failure(anthropic_server, timeout=0.2)

    assert error.retryable
    assert "timeout" in error.message


@pytest.mark.parametrize("behaviour", [{"body": b"not json"}, {"json": {"foo": 1}}])
def test_a_malformed_answer_is_a_provider_error_not_a_crash(anthropic_server, behaviour):
    anthropic_server.script(**behaviour)

    error = failure(anthropic_server)

    assert not error.retryable
    assert "could not read" in error.message


def test_a_missing_key_names_the_variable(anthropic_server):
    with pytest.raises(MissingCredential, match="PROVIDER_KEY"):
        run(provider(anthropic_server, env=NO_ENV).chat(ask("hi")))

    assert anthropic_server.requests == []
