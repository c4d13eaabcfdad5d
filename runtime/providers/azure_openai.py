"""Azure OpenAI chat: OpenAI's protocol at /openai/deployments/{deployment}/…?api-version=…."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.providers._common import ClientCache, Transport
from runtime.providers._errors import translated
from runtime.providers.base import ChatRequest, ChatResult, EnvLookup, OnToken, require_env
from runtime.providers.openai import complete, completion_params, translate_openai_error
from runtime.source_configs import AzureOpenAIConfig

if TYPE_CHECKING:
    from openai import AsyncAzureOpenAI

PROVIDER = "Azure OpenAI"


class AzureOpenAIProvider:
    """The `azure_openai` source kind; the key travels in the `api-key` header."""

    kind = "azure_openai"

    def __init__(
        self,
        config: AzureOpenAIConfig,
        env: EnvLookup,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        self.config = config
        self._env = env
        self._transport = Transport.of(config, timeout=timeout, max_retries=max_retries)
        self._clients: ClientCache[AsyncAzureOpenAI] = ClientCache(self._build)

    async def chat(self, request: ChatRequest, *, on_token: OnToken | None = None) -> ChatResult:
        key = require_env(self._env, self.config.api_key_env, source_kind=self.kind)
        # The deployment picks the model; `model` in the body only names it again.
        params = completion_params(
            self.config.deployment, request, self.config, token_limit="max_completion_tokens"
        )
        translate = translate_openai_error(PROVIDER, self._transport.timeout)
        with translated(translate, secret=key):
            return await complete(self._clients.get(key), params, request, on_token, PROVIDER)

    async def aclose(self) -> None:
        client = self._clients.take()
        if client is not None:
            await client.close()

    def _build(self, key: str) -> AsyncAzureOpenAI:
        from openai import AsyncAzureOpenAI

        return AsyncAzureOpenAI(
            api_key=key,
            azure_endpoint=self.config.endpoint,
            azure_deployment=self.config.deployment,
            api_version=self.config.api_version,
            timeout=self._transport.timeout,
            max_retries=self._transport.max_retries,
        )
