"""Google's Gemini models through google-genai (the Gemini API, not Vertex AI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.egress.transport import sync_refusing_client
from runtime.errors import ProviderError
from runtime.providers._common import (
    GEMINI_URL,
    SDKAdapter,
    conversation,
    system_text,
)
from runtime.providers._errors import (
    body_message,
    connection_error,
    is_malformed_body,
    malformed_error,
    retry_after_seconds,
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

if TYPE_CHECKING:
    import httpx2
    from google.genai import Client, errors
    from google.genai.types import GenerateContentConfig, GenerateContentResponse

    from runtime.providers._errors import Translator

PROVIDER = "Gemini"


@dataclass(frozen=True)
class _Gemini:
    """The SDK client and the HTTP client it was handed, which google-genai leaves open."""

    sdk: Client
    http: httpx2.AsyncClient


class GoogleProvider(SDKAdapter[_Gemini]):
    """The `google` source kind; the key travels in the `x-goog-api-key` header."""

    kind = "google"
    provider = PROVIDER

    async def chat(self, request: ChatRequest, *, on_token: OnToken | None = None) -> ChatResult:
        key = self._key()
        model = self.config.model_name
        with translated(translate_google_error(self._transport.timeout), secret=key):
            models = self._clients.get(key).sdk.aio.models
            contents: Any = _contents(request)
            config = generation_config(request)
            if request.stream:
                chunks = await models.generate_content_stream(
                    model=model, contents=contents, config=config
                )
                return await _read_stream(chunks, model, on_token)
            response = await models.generate_content(model=model, contents=contents, config=config)
            return _result(_text(response), response, model, response)

    async def _close(self, client: _Gemini) -> None:
        await client.sdk.aio.aclose()
        await client.http.aclose()

    def _build(self, key: str) -> _Gemini:
        from google.genai import Client, types

        http = self._http_client()
        retry = types.HttpRetryOptions(attempts=self._transport.max_retries + 1)
        options = types.HttpOptions(
            base_url=self.config.base_url or GEMINI_URL,
            timeout=round(self._transport.timeout * 1000),  # milliseconds
            retry_options=retry,
            # Both clients given: google-genai then builds neither (nor aiohttp's session).
            httpx_async_client=http,
            httpx_client=sync_refusing_client(PROVIDER),
        )
        return _Gemini(Client(api_key=key, vertexai=False, http_options=options), http)


def _contents(request: ChatRequest) -> list[dict[str, Any]]:
    return [
        {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
        for m in conversation(request)
    ]


def generation_config(request: ChatRequest) -> GenerateContentConfig:
    """Penalties are left out: current Gemini models refuse them."""
    from google.genai import types

    return types.GenerateContentConfig(
        system_instruction=system_text(request),
        temperature=request.temperature,
        max_output_tokens=request.max_tokens,
        top_p=request.top_p,
        response_mime_type="application/json" if request.response_format == "json" else None,
    )


async def _read_stream(
    chunks: AsyncIterator[GenerateContentResponse], model: str, on_token: OnToken | None
) -> ChatResult:
    parts: list[str] = []
    last: GenerateContentResponse | None = None
    usage_from: GenerateContentResponse | None = None
    async for chunk in chunks:
        last = chunk
        usage_from = chunk if chunk.usage_metadata is not None else usage_from
        delta = _text(chunk)
        if delta:
            parts.append(delta)
            if on_token is not None:
                await on_token(delta)
    if last is None:
        raise malformed_error(PROVIDER, "the stream ended before any answer")
    return _result("".join(parts), last, model, usage_from)


def _text(response: GenerateContentResponse) -> str:
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate and candidate.content else None
    return "".join(part.text for part in parts or () if part.text and not part.thought)


def _result(
    text: str,
    response: GenerateContentResponse,
    model: str,
    usage_from: GenerateContentResponse | None,
) -> ChatResult:
    if not response.candidates:
        raise _no_candidates(response)
    reason = response.candidates[0].finish_reason
    return ChatResult(
        text=text,
        model=response.model_version or model,
        usage=_usage(usage_from),
        finish_reason=str(reason.value) if reason is not None else None,
    )


def _no_candidates(response: GenerateContentResponse) -> ProviderError:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return ProviderError(f"{PROVIDER} refused the prompt ({feedback.block_reason.value}).")
    return malformed_error(PROVIDER, "the response holds no candidates")


def _usage(response: GenerateContentResponse | None) -> Usage:
    metadata = response.usage_metadata if response is not None else None
    if metadata is None:
        return Usage()
    # Thinking tokens are billed as output but counted apart from the candidates'.
    completion = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return Usage(prompt_tokens=metadata.prompt_token_count or 0, completion_tokens=completion)


def translate_google_error(timeout: float) -> Translator:
    """Map google-genai's exceptions (and httpx2's, which it lets through) to ProviderErrors."""

    def translate(exc: Exception) -> ProviderError | None:
        import httpx2
        from google.genai import errors

        if isinstance(exc, httpx2.TimeoutException):
            return timeout_error(PROVIDER, timeout)
        if isinstance(exc, httpx2.TransportError):
            return connection_error(PROVIDER, str(exc) or type(exc).__name__)
        if isinstance(exc, errors.APIError):
            return _status_error(exc)
        if isinstance(exc, errors.UnknownApiResponseError) or is_malformed_body(exc):
            return malformed_error(PROVIDER, str(exc))
        return None

    return translate


def _status_error(exc: errors.APIError) -> ProviderError:
    message = exc.message or body_message(exc.details) or str(exc)
    headers = getattr(exc.response, "headers", None)
    error = status_error(PROVIDER, exc.code, str(message), headers)
    if error.retryable and error.retry_after is None:
        error.retry_after = _retry_delay(exc.details)
    return error


def _retry_delay(details: Any) -> float | None:
    """Gemini's RetryInfo (`"retryDelay": "30s"`) in the error body, when there is no header."""
    error = details.get("error") if isinstance(details, dict) else None
    for item in error.get("details", []) if isinstance(error, dict) else []:
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            return retry_after_seconds({"retry-after": delay[:-1]})
    return None
