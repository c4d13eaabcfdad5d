"""The azure_openai adapter against the fake OpenAI server's Azure routes."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import MissingCredential, ProviderError
from runtime.providers.azure_openai import AzureOpenAIProvider
from runtime.source_configs import AzureOpenAIConfig
from tests.fakes.providers import COMPLETION_TOKENS, PROMPT_TOKENS, FakeOpenAIServer
from tests.runtime.providers.helpers import ENV, LOCAL, NO_ENV, SECRET, Tokens, ask, run


def provider(server: FakeOpenAIServer, env: Any = ENV, **config: Any) -> AzureOpenAIProvider:
    settings: dict[str, Any] = {
        "deployment": "support-gpt",
        "endpoint": server.url,
        "api_version": "2025-04-01-preview",
        "api_key_env": "PROVIDER_KEY",
        "max_retries": 0,
        "timeout": 5.0,
        **config,
    }
    return AzureOpenAIProvider(AzureOpenAIConfig(**settings), env, egress=LOCAL)


def test_it_calls_the_deployment_with_the_api_version_and_the_api_key_header(openai_server):
    result = run(provider(openai_server, max_tokens=30).chat(ask("bonjour")))

    sent = openai_server.last_request
    assert sent.path == "/openai/deployments/support-gpt/chat/completions"
    assert sent.query["api-version"] == "2025-04-01-preview"
    assert sent.headers["api-key"] == SECRET
    assert "authorization" not in sent.headers
    assert sent.json["max_completion_tokens"] == 30
    assert result.text == "echo: bonjour"
    assert result.usage.prompt_tokens == PROMPT_TOKENS


def test_streamed_deltas_and_usage(openai_server):
    tokens = Tokens()
    result = run(provider(openai_server).chat(ask("a b", stream=True), on_token=tokens))

    assert tokens.received == ["echo: ", "a ", "b"]
    assert result.usage.completion_tokens == COMPLETION_TOKENS


def test_a_rate_limit_is_retryable_with_retry_after(openai_server):
    openai_server.script(status=429, headers={"Retry-After": "1"})

    with pytest.raises(ProviderError) as raised:
        run(provider(openai_server).chat(ask("hi")))

    assert (raised.value.status, raised.value.retryable, raised.value.retry_after) == (
        429,
        True,
        1.0,
    )
    assert "Azure OpenAI" in raised.value.message


def test_a_missing_key_names_the_variable(openai_server):
    with pytest.raises(MissingCredential, match="PROVIDER_KEY"):
        run(provider(openai_server, env=NO_ENV).chat(ask("hi")))
