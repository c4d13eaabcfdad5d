"""Anthropic's Messages API (Claude), plain and streamed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.errors import ProviderError
from runtime.providers._common import (
    ANTHROPIC_URL,
    SDKAdapter,
    conversation,
    first,
    system_text,
)
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
    OnToken,
    Usage,
)
from runtime.source_configs import AnthropicConfig

if TYPE_CHECKING:
    import anthropic
    from anthropic import AsyncAnthropic
    from anthropic.types import Message

    from runtime.providers._errors import Translator

PROVIDER = "Anthropic"
DEFAULT_MAX_TOKENS = 4096
"""The Messages API requires max_tokens; used when neither the node nor the source sets one."""
JSON_INSTRUCTION = "Answer with one JSON object and nothing else."
"""Anthropic has no schema-free JSON mode: `response_format="json"` becomes this instruction."""

# An `error` event mid-stream arrives after a 200: its type says what went wrong.
_STREAM_ERROR_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "invalid_request_error": 400,
}


class AnthropicProvider(SDKAdapter["AsyncAnthropic"]):
    """The `anthropic` source kind."""

    kind = "anthropic"
    provider = PROVIDER

    async def chat(self, request: ChatRequest, *, on_token: OnToken | None = None) -> ChatResult:
        key = self._key()
        params = message_params(self.config, request)
        with translated(translate_anthropic_error(self._transport.timeout), secret=key):
            client = self._clients.get(key)
            if request.stream:
                return await _stream(client, params, on_token)
            return _result(await client.messages.create(**params), self.config.model_name)

    def _build(self, key: str) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=key,
            base_url=self.config.base_url or ANTHROPIC_URL,
            timeout=self._transport.timeout,
            max_retries=self._transport.max_retries,
            http_client=self._http_client(),
        )


def message_params(config: AnthropicConfig, request: ChatRequest) -> dict[str, Any]:
    """messages.create arguments; penalties have no Anthropic equivalent and are left out."""
    params: dict[str, Any] = {
        "model": config.model_name,
        "max_tokens": first(request.max_tokens, config.max_tokens) or DEFAULT_MAX_TOKENS,
        "messages": [{"role": m.role, "content": m.content} for m in conversation(request)],
    }
    system = system_text(request)
    if request.response_format == "json":
        system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
    if system:
        params["system"] = system
    sampling = _sampling(config, request)
    if sampling:
        params["extra_body"] = sampling
    return params


def _sampling(config: AnthropicConfig, request: ChatRequest) -> dict[str, float]:
    """temperature (or else top_p), only when set: sent as extra fields, since anthropic 2.x
    dropped them from its signature and Claude models after Opus 4.6 answer 400 to them.
    Older models still honour them, so a source or node that sets one gets it sent."""
    temperature = first(request.temperature, config.temperature)
    if temperature is not None:
        return {"temperature": temperature}
    return {"top_p": request.top_p} if request.top_p is not None else {}


async def _stream(
    client: AsyncAnthropic, params: dict[str, Any], on_token: OnToken | None
) -> ChatResult:
    async with client.messages.stream(**params) as stream:
        async for text in stream.text_stream:
            if on_token is not None and text:
                await on_token(text)
        message = await stream.get_final_message()
    return _result(message, params["model"])


def _result(message: Message, model: str) -> ChatResult:
    if message.content is None or message.usage is None:
        raise malformed_error(PROVIDER, "the message holds no content or usage")
    text = "".join(block.text for block in message.content if block.type == "text")
    return ChatResult(
        text=text,
        model=message.model or model,
        usage=_usage(message),
        finish_reason=message.stop_reason,
    )


def _usage(message: Message) -> Usage:
    usage = message.usage
    # Cached prompt tokens are counted apart from input_tokens; all of them were read.
    prompt = (
        (usage.input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    return Usage(prompt_tokens=prompt, completion_tokens=usage.output_tokens or 0)


def _status(exc: anthropic.APIStatusError) -> int:
    """The HTTP status, or the one an error event inside a 200 stream stands for."""
    if exc.status_code >= 400:
        return exc.status_code
    return _STREAM_ERROR_STATUS.get(str(exc.type), 500)


def translate_anthropic_error(timeout: float) -> Translator:
    """Map the anthropic SDK's exceptions (raised after its own retries) to ProviderErrors."""

    def translate(exc: Exception) -> ProviderError | None:
        import anthropic

        if isinstance(exc, anthropic.APITimeoutError):
            return timeout_error(PROVIDER, timeout)
        if isinstance(exc, anthropic.APIConnectionError):
            return connection_error(PROVIDER, str(exc.__cause__ or exc.message))
        if isinstance(exc, anthropic.APIStatusError):
            message = exc.api_message or body_message(exc.body) or exc.message
            return status_error(PROVIDER, _status(exc), message, exc.response.headers)
        if isinstance(exc, anthropic.APIResponseValidationError) or is_malformed_body(exc):
            return malformed_error(PROVIDER, str(exc))
        if isinstance(exc, anthropic.APIError | anthropic.RetryableError):
            return ProviderError(f"{PROVIDER} reported an error: {exc}", retryable=True)
        if isinstance(exc, anthropic.AnthropicError):  # the SDK refused before sending
            return ProviderError(f"{PROVIDER}'s SDK refused the request: {exc}")
        return None

    return translate
