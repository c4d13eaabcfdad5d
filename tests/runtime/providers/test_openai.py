"""The openai adapter against a fake OpenAI server, through the real openai SDK."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import MissingCredential, ProviderError
from runtime.providers import PROVIDERS
from runtime.providers.openai import OpenAIProvider, completion_params
from runtime.source_configs import OpenAIConfig
from tests.fakes.providers import COMPLETION_TOKENS, PROMPT_TOKENS, FakeOpenAIServer
from tests.runtime.providers.helpers import ENV, LOCAL, NO_ENV, SECRET, Tokens, ask, run


def provider(server: FakeOpenAIServer, **config: Any) -> OpenAIProvider:
    settings: dict[str, Any] = {
        "model_name": "gpt-test",
        "api_key_env": "PROVIDER_KEY",
        "base_url": server.base_url,
        "max_retries": 0,
        "timeout": 5.0,
        **config,
    }
    return OpenAIProvider(OpenAIConfig(**settings), ENV, egress=LOCAL)


def failure(server: FakeOpenAIServer, **config: Any) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        run(provider(server, **config).chat(ask("hello")))
    return raised.value


def test_it_answers_with_the_text_and_the_providers_token_counts(openai_server):
    result = run(provider(openai_server).chat(ask("hello world")))

    assert result.text == "echo: hello world"
    assert result.model == "gpt-test"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert result.finish_reason == "stop"


def test_it_sends_the_key_as_a_bearer_token_with_the_sources_settings(openai_server):
    source = provider(openai_server, temperature=0.2, max_tokens=50, presence_penalty=0.5)
    run(source.chat(ask("hi", system="be brief", top_p=0.9)))

    sent = openai_server.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.json["model"] == "gpt-test"
    assert sent.json["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert sent.json["temperature"] == 0.2
    assert sent.json["max_tokens"] == 50  # a custom base_url: the widely understood name
    assert sent.json["presence_penalty"] == 0.5
    assert sent.json["top_p"] == 0.9
    assert "frequency_penalty" not in sent.json


def test_the_nodes_overrides_win_over_the_sources_settings(openai_server):
    run(provider(openai_server, temperature=0.2).chat(ask("hi", temperature=1.5, max_tokens=9)))

    assert openai_server.last_request.json["temperature"] == 1.5
    assert openai_server.last_request.json["max_tokens"] == 9


def test_openai_itself_gets_max_completion_tokens():
    config = OpenAIConfig(model_name="gpt-test", api_key_env="K", max_tokens=20)
    params = completion_params("gpt-test", ask("hi"), config, token_limit="max_completion_tokens")

    assert params["max_completion_tokens"] == 20
    assert "max_tokens" not in params


def test_a_json_answer_is_asked_for_as_a_json_object(openai_server):
    run(provider(openai_server).chat(ask("give json", response_format="json")))

    assert openai_server.last_request.json["response_format"] == {"type": "json_object"}


def test_streamed_deltas_reach_on_token_in_order_and_usage_is_still_reported(openai_server):
    tokens = Tokens()
    result = run(provider(openai_server).chat(ask("one two three", stream=True), on_token=tokens))

    assert tokens.received == ["echo: ", "one ", "two ", "three"]
    assert result.text == "echo: one two three"
    assert result.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    assert result.finish_reason == "stop"
    assert openai_server.last_request.json["stream_options"] == {"include_usage": True}


def test_a_rate_limit_is_retryable_and_says_how_long_to_wait(openai_server):
    openai_server.script(status=429, headers={"Retry-After": "1"}, message="Rate limit reached")

    error = failure(openai_server)

    assert (error.status, error.retryable, error.retry_after) == (429, True, 1.0)
    assert "Rate limit reached" in error.message


def test_the_sdk_retries_a_server_error_itself_before_giving_up(openai_server):
    openai_server.script(status=500, headers={"retry-after-ms": "10"})

    result = run(provider(openai_server, max_retries=1).chat(ask("again")))

    assert result.text == "echo: again"
    assert len(openai_server.requests) == 2


def test_a_server_error_is_retryable(openai_server):
    openai_server.script(status=500)

    error = failure(openai_server)

    assert (error.status, error.retryable, error.retry_after) == (500, True, None)


def test_a_bad_request_is_not_retryable_and_carries_the_providers_message(openai_server):
    openai_server.script(status=400, message="'temperature' is out of range")

    error = failure(openai_server)

    assert (error.status, error.retryable) == (400, False)
    assert "'temperature' is out of range" in error.message


def test_a_slow_answer_times_out_as_a_retryable_error(openai_server):
    openai_server.script(delay=2.0)

    error = failure(openai_server, timeout=0.2)

    assert error.retryable
    assert "timeout" in error.message
    assert "0.2 s" in error.message


@pytest.mark.parametrize("behaviour", [{"body": b"not json"}, {"json": {"foo": 1}}])
def test_a_malformed_answer_is_a_provider_error_not_a_crash(openai_server, behaviour):
    openai_server.script(**behaviour)

    error = failure(openai_server)

    assert not error.retryable
    assert "could not read" in error.message


def test_an_unreachable_server_is_a_retryable_connection_error(openai_server):
    url = openai_server.base_url
    openai_server.stop()
    source = OpenAIConfig(model_name="m", api_key_env="PROVIDER_KEY", base_url=url, max_retries=0)

    with pytest.raises(ProviderError) as raised:
        run(OpenAIProvider(source, ENV, egress=LOCAL).chat(ask("hi")))

    assert raised.value.retryable
    assert "Could not reach OpenAI" in raised.value.message


def test_a_missing_key_names_the_variable_and_sends_nothing(openai_server):
    source = OpenAIConfig(model_name="m", api_key_env="PROVIDER_KEY", base_url=openai_server.url)

    with pytest.raises(MissingCredential, match="PROVIDER_KEY"):
        run(OpenAIProvider(source, NO_ENV, egress=LOCAL).chat(ask("hi")))

    assert openai_server.requests == []


def test_the_key_never_appears_in_an_error(openai_server):
    openai_server.script(status=401, message=f"Incorrect API key provided: {SECRET}")

    error = failure(openai_server)

    assert SECRET not in str(error)
    assert error.__cause__ is None or SECRET not in str(error.__cause__)
    assert "[redacted]" in error.message


def test_one_client_serves_every_call_on_a_loop_and_a_new_loop_gets_its_own(openai_server):
    source = provider(openai_server)

    async def twice() -> None:
        await source.chat(ask("a"))
        first_client = source._clients.get(SECRET)
        await source.chat(ask("b"))
        assert source._clients.get(SECRET) is first_client

    run(twice())
    run(twice())  # a closed loop's client would fail here

    assert len(openai_server.requests) == 4


def test_embeddings_come_back_in_input_order_with_usage(openai_server):
    source = provider(openai_server, model_name="text-embedding-test")

    result = run(source.embed(["abc", "zzz"]))

    assert len(result.vectors) == 2
    assert result.vectors[0][:3] == (1.0, 1.0, 1.0)
    assert result.vectors[1][25] == 3.0
    assert result.model == "text-embedding-test"
    assert result.usage.prompt_tokens == PROMPT_TOKENS
    assert openai_server.last_request.path == "/v1/embeddings"
    assert openai_server.last_request.json["input"] == ["abc", "zzz"]


def test_no_texts_need_no_request(openai_server):
    result = run(provider(openai_server).embed([]))

    assert result.vectors == ()
    assert openai_server.requests == []


def test_the_registry_builds_the_openai_adapter(openai_server):
    source = OpenAIConfig(model_name="m", api_key_env="PROVIDER_KEY", base_url=openai_server.url)

    assert isinstance(PROVIDERS["openai"](source, ENV), OpenAIProvider)
