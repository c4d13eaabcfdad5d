"""OpenAI chat completions and embeddings, on api.openai.com or any OpenAI-compatible server.

The chat helpers here (`completion_params`, `complete`, `translate_openai_error`) also serve the
Azure OpenAI adapter, which speaks the same protocol through another client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.errors import ProviderError
from runtime.providers._common import OPENAI_URL, SDKAdapter, first
from runtime.providers._errors import (
    body_message,
    connection_error,
    is_malformed_body,
    malformed_error,
    status_error,
    timeout_error,
    translated,
)
from runtime.providers.base import (
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    OnToken,
    Usage,
)
from runtime.source_configs import AzureOpenAIConfig, OpenAIConfig

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream
    from openai.types import CompletionUsage
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionStreamOptionsParam,
    )

    from runtime.providers._errors import Translator

PROVIDER = "OpenAI"


class OpenAIProvider(SDKAdapter["AsyncOpenAI"]):
    """The `openai` source kind: `chat` for llm/router nodes, `embed` for the semantic router."""

    kind = "openai"
    provider = PROVIDER

    async def chat(self, request: ChatRequest, *, on_token: OnToken | None = None) -> ChatResult:
        key = self._key()
        params = completion_params(
            self.config.model_name,
            request,
            self.config,
            token_limit="max_tokens" if self.config.base_url else "max_completion_tokens",
        )
        with translated(self._translate(), secret=key):
            return await complete(self._clients.get(key), params, request, on_token, PROVIDER)

    async def embed(self, texts: list[str]) -> EmbeddingResult:
        model = self.config.model_name
        if not texts:
            return EmbeddingResult(vectors=(), model=model, usage=Usage())
        key = self._key()
        with translated(self._translate(), secret=key):
            response = await self._clients.get(key).embeddings.create(model=model, input=texts)
            if not response.data:
                raise malformed_error(PROVIDER, "the embeddings response holds no data")
            ordered = sorted(response.data, key=lambda item: item.index)
            usage = Usage(prompt_tokens=response.usage.prompt_tokens if response.usage else 0)
            vectors = tuple(tuple(item.embedding) for item in ordered)
            return EmbeddingResult(vectors=vectors, model=response.model or model, usage=usage)

    def _build(self, key: str) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=key,
            base_url=self.config.base_url or OPENAI_URL,
            organization=self.config.organization,
            timeout=self._transport.timeout,
            max_retries=self._transport.max_retries,
            http_client=self._http_client(),
        )

    def _translate(self) -> Translator:
        return translate_openai_error(PROVIDER, self._transport.timeout)


def completion_params(
    model: str,
    request: ChatRequest,
    config: OpenAIConfig | AzureOpenAIConfig,
    *,
    token_limit: str,
) -> dict[str, Any]:
    """The chat.completions.create arguments: the request's overrides before the source's values.

    `token_limit` names the length field: `max_completion_tokens` for OpenAI and Azure (required
    by reasoning models), `max_tokens` for other OpenAI-compatible servers (vLLM, Ollama).
    """
    params: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
    }
    optional = {
        "temperature": first(request.temperature, config.temperature),
        token_limit: first(request.max_tokens, config.max_tokens),
        "top_p": first(request.top_p, config.top_p),
        "frequency_penalty": first(request.frequency_penalty, config.frequency_penalty),
        "presence_penalty": first(request.presence_penalty, config.presence_penalty),
    }
    params.update({name: value for name, value in optional.items() if value is not None})
    if request.response_format == "json":
        params["response_format"] = {"type": "json_object"}
    return params


async def complete(
    client: AsyncOpenAI,
    params: dict[str, Any],
    request: ChatRequest,
    on_token: OnToken | None,
    provider: str,
) -> ChatResult:
    """Send one chat completion, streamed when the request asks, and read the answer."""
    completions = client.chat.completions
    if request.stream:
        stream_options: ChatCompletionStreamOptionsParam = {"include_usage": True}
        stream = await completions.create(**params, stream=True, stream_options=stream_options)
        return await _read_stream(stream, params["model"], on_token)
    return _read_completion(await completions.create(**params), params["model"], provider)


def _read_completion(completion: ChatCompletion, model: str, provider: str) -> ChatResult:
    choices = completion.choices
    message = choices[0].message if choices else None
    if message is None:
        raise malformed_error(provider, "the completion holds no choices")
    return ChatResult(
        text=message.content or "",
        model=completion.model or model,
        usage=_usage(completion.usage),
        finish_reason=choices[0].finish_reason,
    )


async def _read_stream(
    stream: AsyncStream[ChatCompletionChunk], model: str, on_token: OnToken | None
) -> ChatResult:
    parts: list[str] = []
    usage, finish_reason = Usage(), None
    async with stream:
        async for chunk in stream:
            model = chunk.model or model
            if chunk.usage is not None:
                usage = _usage(chunk.usage)
            # Azure's first chunk carries only content-filter results and no choices.
            for choice in chunk.choices or ():
                finish_reason = choice.finish_reason or finish_reason
                delta = choice.delta.content if choice.index == 0 and choice.delta else None
                if delta:
                    parts.append(delta)
                    if on_token is not None:
                        await on_token(delta)
    return ChatResult(text="".join(parts), model=model, usage=usage, finish_reason=finish_reason)


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:  # some OpenAI-compatible servers send none
        return Usage()
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0
    )


def translate_openai_error(provider: str, timeout: float) -> Translator:
    """Map the openai SDK's exceptions (raised after its own retries) to ProviderErrors."""

    def translate(exc: Exception) -> ProviderError | None:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return timeout_error(provider, timeout)
        if isinstance(exc, openai.APIConnectionError):
            return connection_error(provider, str(exc.__cause__ or exc.message))
        if isinstance(exc, openai.APIStatusError):
            message = body_message(exc.body) or exc.message
            return status_error(provider, exc.status_code, message, exc.response.headers)
        if isinstance(exc, openai.APIResponseValidationError) or is_malformed_body(exc):
            return malformed_error(provider, str(exc))
        if isinstance(exc, openai.APIError):  # an error event inside a stream
            return ProviderError(f"{provider} reported an error: {exc.message}", retryable=True)
        if isinstance(exc, openai.OpenAIError):  # the SDK refused before sending
            return ProviderError(f"{provider}'s SDK refused the request: {exc}")
        return None

    return translate
