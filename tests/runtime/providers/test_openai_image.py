"""The openai_image adapter against the fake OpenAI server's images route."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import MissingCredential, ProviderError
from runtime.providers.base import ImageRequest
from runtime.providers.openai_image import OpenAIImageProvider
from runtime.source_configs import OpenAIImageConfig
from tests.fakes.providers import PNG_BYTES, PROMPT_TOKENS, FakeOpenAIServer
from tests.runtime.providers.helpers import ENV, LOCAL, NO_ENV, SECRET, run


def provider(
    server: FakeOpenAIServer, *, env: Any = ENV, timeout: float = 5.0, **config: Any
) -> OpenAIImageProvider:
    settings: dict[str, Any] = {
        "model_name": "gpt-image-1",
        "api_key_env": "PROVIDER_KEY",
        "base_url": server.base_url,
        **config,
    }
    return OpenAIImageProvider(
        OpenAIImageConfig(**settings), env, egress=LOCAL, timeout=timeout, max_retries=0
    )


def test_a_gpt_image_model_returns_the_image_bytes_and_size(openai_server):
    source = provider(openai_server, size="1536x1024", quality="standard", style="vivid")

    result = run(source.generate(ImageRequest(prompt="a red fox")))

    (image,) = result.images
    assert image.data == PNG_BYTES
    assert image.url is None
    assert image.mime_type == "image/png"
    assert (result.model, result.size) == ("gpt-image-1", "1536x1024")
    assert result.usage.prompt_tokens == PROMPT_TOKENS
    sent = openai_server.last_request
    assert sent.path == "/v1/images/generations"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.json["quality"] == "medium"  # "standard" in GPT image terms
    assert "style" not in sent.json  # GPT image models have no styles
    assert "response_format" not in sent.json  # they always answer in base64


def test_dall_e_3_returns_a_url_and_the_revised_prompt(openai_server):
    source = provider(openai_server, model_name="dall-e-3", quality="high", style="natural")

    result = run(source.generate(ImageRequest(prompt="a red fox", size="1792x1024")))

    (image,) = result.images
    assert image.url is not None and image.url.endswith(".png")
    assert image.data is None
    assert image.revised_prompt == "revised: a red fox"
    assert result.size == "1792x1024"
    sent = openai_server.last_request.json
    assert (sent["quality"], sent["style"], sent["size"]) == ("hd", "natural", "1792x1024")


def test_the_nodes_settings_win_over_the_sources(openai_server):
    source = provider(openai_server, size="1024x1024", quality="low")

    run(source.generate(ImageRequest(prompt="p", size="1024x1536", quality="hd")))

    sent = openai_server.last_request.json
    assert (sent["size"], sent["quality"]) == ("1024x1536", "high")


def test_a_content_policy_refusal_is_not_retryable(openai_server):
    openai_server.script(status=400, message="Your request was rejected by the safety system.")

    with pytest.raises(ProviderError) as raised:
        run(provider(openai_server).generate(ImageRequest(prompt="p")))

    assert (raised.value.status, raised.value.retryable) == (400, False)
    assert "safety system" in raised.value.message


def test_a_slow_image_times_out_as_a_retryable_error(openai_server):
    openai_server.script(delay=2.0)

    with pytest.raises(ProviderError) as raised:
        run(provider(openai_server, timeout=0.2).generate(ImageRequest(prompt="p")))

    assert raised.value.retryable


def test_an_image_that_does_not_decode_is_a_provider_error(openai_server):
    openai_server.script(json={"created": 1, "data": [{"b64_json": "%%% not base64"}]})

    with pytest.raises(ProviderError, match="base64"):
        run(provider(openai_server).generate(ImageRequest(prompt="p")))


def test_a_missing_key_names_the_variable(openai_server):
    with pytest.raises(MissingCredential, match="PROVIDER_KEY"):
        run(provider(openai_server, env=NO_ENV).generate(ImageRequest(prompt="p")))
