"""Every provider SDK goes through the egress door: checked, pinned, and never redirected.

The fakes run on 127.0.0.1, trusted here as an operator would trust an in-house model server.
A redirect's target is a bare listener: it must accept no connection at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from openai import AsyncOpenAI

from runtime.egress import EgressPolicy, EgressRefused
from runtime.egress.transport import sdk_client
from runtime.providers import (
    AnthropicProvider,
    AzureOpenAIProvider,
    GoogleProvider,
    OpenAIImageProvider,
    OpenAIProvider,
)
from runtime.providers.base import ImageRequest
from runtime.source_configs import (
    AnthropicConfig,
    AzureOpenAIConfig,
    GoogleConfig,
    OpenAIConfig,
    OpenAIImageConfig,
)
from tests.fakes.server import FakeServer
from tests.runtime.http.servers import listening
from tests.runtime.http.test_egress import NoNetwork, Recording, resolver
from tests.runtime.providers.helpers import ENV, LOCAL, ask, run

Call = Callable[[Any, EgressPolicy, Any], Coroutine[Any, Any, Any]]
KEY = "PROVIDER_KEY"


async def _openai(server: Any, policy: EgressPolicy, backend: Any) -> Any:
    config = OpenAIConfig(model_name="m", base_url=server.base_url, max_retries=0, api_key_env=KEY)
    provider = OpenAIProvider(config, ENV, egress=policy, network_backend=backend)
    return await provider.chat(ask("the prompt"))


async def _azure(server: Any, policy: EgressPolicy, backend: Any) -> Any:
    config = AzureOpenAIConfig(
        deployment="d",
        endpoint=server.url,
        api_version="2025-04-01-preview",
        max_retries=0,
        api_key_env=KEY,
    )
    provider = AzureOpenAIProvider(config, ENV, egress=policy, network_backend=backend)
    return await provider.chat(ask("the prompt"))


async def _anthropic(server: Any, policy: EgressPolicy, backend: Any) -> Any:
    config = AnthropicConfig(model_name="claude-test", base_url=server.url, api_key_env=KEY)
    provider = AnthropicProvider(config, ENV, egress=policy, network_backend=backend, max_retries=0)
    return await provider.chat(ask("the prompt"))


async def _google(server: Any, policy: EgressPolicy, backend: Any) -> Any:
    config = GoogleConfig(model_name="gemini-test", base_url=server.url, api_key_env=KEY)
    provider = GoogleProvider(config, ENV, egress=policy, network_backend=backend, max_retries=0)
    try:
        return await provider.chat(ask("the prompt"))
    finally:
        await provider.aclose()


async def _image(server: Any, policy: EgressPolicy, backend: Any) -> Any:
    config = OpenAIImageConfig(model_name="gpt-image-1", base_url=server.base_url, api_key_env=KEY)
    provider = OpenAIImageProvider(config, ENV, egress=policy, network_backend=backend)
    return await provider.generate(ImageRequest(prompt="the prompt"))


CALLS: dict[str, tuple[str, Call]] = {
    "openai": ("openai_server", _openai),
    "azure_openai": ("openai_server", _azure),
    "anthropic": ("anthropic_server", _anthropic),
    "google": ("gemini_server", _google),
    "openai_image": ("openai_server", _image),
}


@pytest.mark.parametrize("kind", sorted(CALLS))
def test_a_redirect_from_a_trusted_provider_is_refused_and_never_followed(
    kind: str, request: pytest.FixtureRequest
) -> None:
    fixture, call = CALLS[kind]
    server: FakeServer = request.getfixturevalue(fixture)
    with listening() as target:
        server.script(times=5, status=307, headers={"Location": f"{target.url}/steal"}, body=b"")
        with pytest.raises(EgressRefused, match="redirect") as raised:
            run(call(server, LOCAL, Recording()))
    assert raised.value.code == "egress_refused"
    assert target.url in raised.value.message
    assert target.accepted == []  # the prompt and the key went nowhere else
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", sorted(CALLS))
def test_a_provider_on_an_untrusted_private_address_is_never_connected_to(
    kind: str, request: pytest.FixtureRequest
) -> None:
    fixture, call = CALLS[kind]
    server: FakeServer = request.getfixturevalue(fixture)
    with pytest.raises(EgressRefused, match="loopback"):
        run(call(server, EgressPolicy(), NoNetwork()))
    assert server.requests == []


def test_another_port_of_a_trusted_host_is_refused(openai_server: Any) -> None:
    with listening() as other:
        config = OpenAIConfig(
            model_name="m", base_url=f"{other.url}/v1", max_retries=0, api_key_env=KEY
        )
        policy = EgressPolicy.of([openai_server.url.removeprefix("http://")])
        with pytest.raises(EgressRefused, match=f"port {other.port}"):
            run(OpenAIProvider(config, ENV, egress=policy).chat(ask("x")))
    assert other.accepted == []


def test_the_sdks_connection_goes_to_the_checked_address_and_a_rebinding_name_is_refused(
    openai_server: Any,
) -> None:
    port = openai_server.url.rsplit(":", 1)[1]
    resolve = resolver({"models.corp": [["127.0.0.1"], ["169.254.169.254"]]})
    network = Recording()
    http = sdk_client(
        EgressPolicy.of(["models.corp"]),
        provider="OpenAI",
        timeout=5,
        resolve=resolve,
        network_backend=network,
    )
    client = AsyncOpenAI(
        api_key="k", base_url=f"http://models.corp:{port}/v1", http_client=http, max_retries=0
    )
    message = [{"role": "user", "content": "x"}]

    async def two_calls() -> None:
        async with client:
            await client.chat.completions.create(model="m", messages=message)  # type: ignore[arg-type]
            # The fake closes each connection: the next one is looked up again, and checked again.
            await client.chat.completions.create(model="m", messages=message)  # type: ignore[arg-type]

    with pytest.raises(EgressRefused, match="metadata"):
        asyncio.run(two_calls())
    assert resolve.calls == ["models.corp", "models.corp"]  # one lookup per connection
    assert network.addresses == ["127.0.0.1"]  # the rebound answer was never connected to
    assert len(openai_server.requests) == 1
    assert openai_server.last_request.headers["host"] == f"models.corp:{port}"


def test_a_name_resolving_to_metadata_is_refused_before_any_connection() -> None:
    async def call() -> None:
        http = sdk_client(
            EgressPolicy.of(["0.0.0.0/0", "models.corp"]),
            provider="OpenAI",
            timeout=5,
            resolve=resolver({"models.corp": [["169.254.169.254"]]}),
            network_backend=NoNetwork(),
        )
        client = AsyncOpenAI(
            api_key="k", base_url="http://models.corp/v1", http_client=http, max_retries=0
        )
        async with client:
            await client.models.list()

    with pytest.raises(EgressRefused, match="metadata"):
        asyncio.run(call())


def test_a_redirect_is_refused_even_when_a_request_asks_to_follow_it(openai_server: Any) -> None:
    async def call() -> None:
        async with sdk_client(LOCAL, provider="OpenAI", timeout=5) as http:
            await http.get(f"{openai_server.url}/v1/models", follow_redirects=True)

    with listening() as target:
        openai_server.script(status=308, headers={"Location": f"{target.url}/"}, body=b"")
        with pytest.raises(EgressRefused, match="HTTP 308"):
            asyncio.run(call())
    assert target.accepted == []
