"""What every adapter shares: statuses worth a retry, Retry-After, redaction, base URLs."""

from __future__ import annotations

import email.utils

import pytest

from runtime.errors import ProviderError
from runtime.providers import PROVIDERS
from runtime.providers._errors import (
    is_retryable_status,
    retry_after_seconds,
    status_error,
    translated,
)
from runtime.providers.anthropic import AnthropicProvider
from runtime.providers.google import GoogleProvider
from runtime.providers.openai import OpenAIProvider
from runtime.source_configs import SOURCE_CONFIGS, AnthropicConfig, GoogleConfig, OpenAIConfig
from tests.runtime.providers.helpers import NO_ENV


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_these_statuses_are_worth_a_retry(status):
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_these_statuses_are_not(status):
    assert not is_retryable_status(status)


def test_retry_after_in_seconds_milliseconds_or_as_a_date():
    now = 1_800_000_000.0
    in_ten_seconds = email.utils.formatdate(now + 10, usegmt=True)

    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": in_ten_seconds}, now=now) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_a_bad_request_keeps_no_retry_after_even_when_sent():
    error = status_error("OpenAI", 400, "bad", {"retry-after": "5"})

    assert (error.retryable, error.retry_after) == (False, None)


def test_the_secret_is_redacted_from_translated_errors_and_their_cause():
    def translate(exc: Exception) -> ProviderError:
        return ProviderError(f"failed: {exc}", status=401)

    with pytest.raises(ProviderError) as raised, translated(translate, secret="sk-live-1"):
        raise RuntimeError("key sk-live-1 was refused")

    assert raised.value.message == "failed: key [redacted] was refused"
    assert str(raised.value) == raised.value.message
    assert raised.value.__cause__ is None


def test_exceptions_the_translator_does_not_know_pass_through():
    with pytest.raises(KeyError), translated(lambda exc: None):
        raise KeyError("a bug, not a provider failure")


def test_every_llm_and_image_source_kind_has_an_adapter():
    llm_kinds = {"openai", "azure_openai", "anthropic", "google", "openai_image"}

    assert llm_kinds <= set(PROVIDERS)
    assert llm_kinds <= set(SOURCE_CONFIGS)


def test_a_source_without_base_url_ignores_the_servers_base_url_variables(monkeypatch):
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.setenv(name, "http://attacker.example/")
    openai = OpenAIProvider(OpenAIConfig(model_name="m", api_key_env="K"), NO_ENV)
    anthropic = AnthropicProvider(AnthropicConfig(model_name="m", api_key_env="K"), NO_ENV)
    google = GoogleProvider(GoogleConfig(model_name="m", api_key_env="K"), NO_ENV)

    assert str(openai._build("k").base_url) == "https://api.openai.com/v1/"
    assert str(anthropic._build("k").base_url) == "https://api.anthropic.com"
    assert google._build("k").sdk._api_client._http_options.base_url == (
        "https://generativelanguage.googleapis.com/"
    )
