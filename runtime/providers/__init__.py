"""The provider adapters, one per source kind: `PROVIDERS[kind](config, env)` builds one.

An adapter offers `chat` (ChatProvider), `embed` (EmbeddingProvider) or `generate`
(ImageProvider), as its kind allows. The SDKs are imported on first use, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.providers.anthropic import AnthropicProvider
from runtime.providers.azure_openai import AzureOpenAIProvider
from runtime.providers.base import ChatProvider, EmbeddingProvider, ImageProvider
from runtime.providers.google import GoogleProvider
from runtime.providers.http import HTTPProvider, HTTPSource
from runtime.providers.openai import OpenAIProvider
from runtime.providers.openai_image import OpenAIImageProvider

Provider = ChatProvider | EmbeddingProvider | ImageProvider | HTTPProvider
ProviderFactory = Callable[..., Provider]
"""Called with the source's validated config model (runtime.source_configs), an EnvLookup and
`egress=` (runtime.egress.EgressPolicy): the non-public hosts it may reach, none when omitted."""

PROVIDERS: dict[str, ProviderFactory] = {
    "openai": OpenAIProvider,
    "azure_openai": AzureOpenAIProvider,
    "anthropic": AnthropicProvider,
    "google": GoogleProvider,
    "openai_image": OpenAIImageProvider,
    "http": HTTPSource,
}

__all__ = [
    "PROVIDERS",
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "GoogleProvider",
    "OpenAIImageProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderFactory",
]
