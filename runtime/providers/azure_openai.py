"""Azure OpenAI chat: OpenAI's protocol at /openai/deployments/{deployment}/…?api-version=…."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.providers._common import SDKAdapter
from runtime.providers._errors import translated
from runtime.providers.base import ChatRequest, ChatResult, OnToken
from runtime.providers.openai import complete, completion_params, translate_openai_error

if TYPE_CHECKING:
    from openai import AsyncAzureOpenAI

PROVIDER = "Azure OpenAI"


class AzureOpenAIProvider(SDKAdapter["AsyncAzureOpenAI"]):
    """The `azure_openai` source kind; the key travels in the `api-key` header."""

    kind = "azure_openai"
    provider = PROVIDER

    async def chat(self, request: ChatRequest, *, on_token: OnToken | None = None) -> ChatResult:
        key = self._key()
        # The deployment picks the model; `model` in the body only names it again.
        params = completion_params(
            self.config.deployment, request, self.config, token_limit="max_completion_tokens"
        )
        translate = translate_openai_error(PROVIDER, self._transport.timeout)
        with translated(translate, secret=key):
            return await complete(self._clients.get(key), params, request, on_token, PROVIDER)

    def _build(self, key: str) -> AsyncAzureOpenAI:
        from openai import AsyncAzureOpenAI

        return AsyncAzureOpenAI(
            api_key=key,
            azure_endpoint=self.config.endpoint,
            azure_deployment=self.config.deployment,
            api_version=self.config.api_version,
            timeout=self._transport.timeout,
            max_retries=self._transport.max_retries,
            http_client=self._http_client(),
        )
