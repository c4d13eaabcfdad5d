"""The google adapter against a fake Gemini server, through the real google-genai SDK."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import MissingCredential, ProviderError
from runtime.providers.google import GoogleProvider
from runtime.source_configs import GoogleConfig
from tests.fakes.providers import COMPLETION_TOKENS, PROMPT_TOKENS, FakeGeminiServer
from tests.runtime.providers.helpers import ENV, LOCAL, NO_ENV, SECRET, Tokens, ask, run


def provider(
    server: FakeGeminiServer, *, env: Any = ENV, timeout: float = 5.0, max_retries: int = 0
) -> GoogleProvider:
    source = GoogleConfig(model_name="gemini-test", api_key_env="PROVIDER_KEY", base_url=server.url)
    # GoogleConfig has no timeout/max_retries fields (SPEC §1): the adapter takes them directly.
    return GoogleProvider(source, env, egress=LOCAL, timeout=timeout, max_retries=max_retries)


def failure(server: FakeGeminiServer, **options: Any) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        run(provider(server, **options).chat(ask("hello")))
    return raised.value


def test_it_answers_with_the_text_and_the_providers_token_counts(gemini_server):
    result = run(provider(gemini_server).chat(ask("hello world")))

    assert result.text == "echo: hello world"
    assert result.model == "gemini-test"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert result.finish_reason == "STOP"


def test_it_sends_the_key_header_the_system_instruction_and_the_generation_config(gemini_server):
    request = ask("hi", system="be brief", temperature=0.4, max_tokens=64, response_format="json")
    run(provider(gemini_server).chat(request))

    sent = gemini_server.last_request
    assert sent.path.endswith("/models/gemini-test:generateContent")
    assert sent.headers["x-goog-api-key"] == SECRET
    assert "key" not in sent.query
    assert sent.json["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert sent.json["systemInstruction"]["parts"] == [{"text": "be brief"}]
    assert sent.json["generationConfig"] == {
        "temperature": 0.4,
        "maxOutputTokens": 64,
        "responseMimeType": "application/json",
    }


def test_streamed_deltas_reach_on_token_in_order_and_usage_is_still_reported(gemini_server):
    tokens = Tokens()
    result = run(provider(gemini_server).chat(ask("one two", stream=True), on_token=tokens))

    assert tokens.received == ["echo: ", "one ", "two"]
    assert result.text == "echo: one two"
    assert result.usage.completion_tokens == COMPLETION_TOKENS
    assert gemini_server.last_request.path.endswith(":streamGenerateContent")
    assert gemini_server.last_request.query["alt"] == "sse"


def test_a_rate_limit_is_retryable_and_says_how_long_to_wait(gemini_server):
    gemini_server.script(status=429, headers={"Retry-After": "1"}, message="Resource exhausted")

    error = failure(gemini_server)

    assert (error.status, error.retryable, error.retry_after) == (429, True, 1.0)
    assert "Resource exhausted" in error.message


def test_a_rate_limit_without_header_takes_the_retry_info_in_the_body(gemini_server):
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
    error_body = {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}
    gemini_server.script(status=429, json={"error": {**error_body, "details": [retry_info]}})

    assert failure(gemini_server).retry_after == 7.0


def test_a_server_error_is_retryable(gemini_server):
    gemini_server.script(status=503)

    error = failure(gemini_server)

    assert (error.status, error.retryable) == (503, True)


def test_a_bad_request_is_not_retryable_and_carries_the_providers_message(gemini_server):
    gemini_server.script(status=400, message="Invalid value at 'generation_config.temperature'")

    error = failure(gemini_server)

    assert (error.status, error.retryable) == (400, False)
    assert "Invalid value at 'generation_config.temperature'" in error.message


def test_a_slow_answer_times_out_as_a_retryable_error(gemini_server):
    gemini_server.script(delay=2.0)

    error = failure(gemini_server, timeout=0.2)

    assert error.retryable
    assert "timeout" in error.message


@pytest.mark.parametrize("behaviour", [{"body": b"not json"}, {"json": {"foo": 1}}])
def test_a_malformed_answer_is_a_provider_error_not_a_crash(gemini_server, behaviour):
    gemini_server.script(**behaviour)

    error = failure(gemini_server)

    assert not error.retryable
    assert "could not read" in error.message


def test_a_blocked_prompt_says_why(gemini_server):
    gemini_server.script(json={"promptFeedback": {"blockReason": "SAFETY"}})

    error = failure(gemini_server)

    assert not error.retryable
    assert "SAFETY" in error.message


def test_max_retries_becomes_the_sdks_attempts(gemini_server):
    # Not run for real: google-genai waits at least a second between attempts.
    client = provider(gemini_server, max_retries=1)._build(SECRET)

    retry = client.sdk._api_client._http_options.retry_options
    assert retry is not None and retry.attempts == 2


def test_a_missing_key_names_the_variable(gemini_server):
    with pytest.raises(MissingCredential, match="PROVIDER_KEY"):
        run(provider(gemini_server, env=NO_ENV).chat(ask("hi")))
