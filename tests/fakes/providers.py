"""Fake OpenAI (and Azure OpenAI), Anthropic and Gemini servers speaking each wire protocol.

The default answer echoes the last user message (`"echo: <prompt>"`) with fixed usage:
`PROMPT_TOKENS` in, `COMPLETION_TOKENS` out. Streams split the answer into word-sized deltas.
`FakeOpenAIServer(count_tokens=True)` reports usage counted as OpenAI counts it instead (tiktoken).
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runtime.estimate.tokenizer import encoding, tokenizer_for
from tests.fakes.server import (
    Behaviour,
    FakeServer,
    RecordedRequest,
    Reply,
    json_reply,
    sse_reply,
)

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7
# A 1x1 transparent PNG: what the GPT image models' b64_json decodes to.
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
_CREATED = 1_790_000_000


MODELS = {
    "openai": ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-image-1", "dall-e-3"],
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5"],
    "google": ["gemini-2.5-flash", "gemini-2.5-pro"],
}
"""What each fake lists at GET …/models (what a source test checks the model against)."""


def echo(prompt: str) -> str:
    return f"echo: {prompt}"


def deltas(text: str) -> list[str]:
    """Word-sized pieces that join back into `text`."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _answer_text(behaviour: Behaviour, prompt: str) -> str:
    return behaviour.text if behaviour.text is not None else echo(prompt)


def _not_found(request: RecordedRequest) -> Reply:
    return json_reply(404, {"error": {"message": f"no route for {request.path}"}})


# --- OpenAI and Azure OpenAI -------------------------------------------------------------------


def _openai_error(status: int, behaviour: Behaviour) -> Reply:
    kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "invalid_request_error")
    if status >= 500:
        kind = "server_error"
    message = behaviour.message or f"fake error {status}"
    payload = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return json_reply(status, payload, behaviour.headers)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))
    return ""


def _tiktoken_count(model: str, text: str) -> int:
    return len(encoding(tokenizer_for("openai", model)).encode(text, disallowed_special=()))


def _counted_usage(model: str, messages: list[dict[str, Any]], answer: str) -> tuple[int, int]:
    """OpenAI's count (the cookbook's): each message 3 tokens plus its values' tokens (role
    and content), 3 more priming the reply; the answer's own tokens."""
    prompt = 3
    for message in messages:
        values = [message.get("role") or "", message.get("content") or ""]
        prompt += 3 + sum(_tiktoken_count(model, str(value)) for value in values)
    return prompt, _tiktoken_count(model, answer)


@dataclass(frozen=True)
class CountedChat:
    messages: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int


def _counted_chat(request: RecordedRequest, behaviour: Behaviour) -> CountedChat:
    body = request.json or {}
    messages = body.get("messages", [])
    text = _answer_text(behaviour, _last_user_text(messages))
    return CountedChat(messages, *_counted_usage(body.get("model") or "", messages, text))


def _openai_chat(request: RecordedRequest, behaviour: Behaviour, counted: bool = False) -> Reply:
    body = request.json or {}
    text = _answer_text(behaviour, _last_user_text(body.get("messages", [])))
    model = body.get("model") or "fake-model"
    prompt, completion = PROMPT_TOKENS, COMPLETION_TOKENS
    if counted:
        prompt, completion = _counted_usage(model, body.get("messages", []), text)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if body.get("stream"):
        include_usage = (body.get("stream_options") or {}).get("include_usage", False)
        return sse_reply(_openai_stream(text, model, usage if include_usage else None))
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text, "refusal": None},
        "finish_reason": "stop",
        "logprobs": None,
    }
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [choice],
        "usage": usage,
    }
    return json_reply(behaviour.status, payload, behaviour.headers)


def _openai_stream(text: str, model: str, usage: dict[str, int] | None) -> Iterator[bytes]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": _CREATED}
    base["model"] = model

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _sse_data({**base, "choices": [choice], "usage": None})

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in deltas(text):
        yield chunk({"content": piece}, None)
    yield chunk({}, "stop")
    if usage is not None:
        yield _sse_data({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def _sse_data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def embedding_vector(text: str) -> list[float]:
    """Letter frequencies (a-z) plus one constant: similar texts get similar vectors."""
    lowered = text.lower()
    counts = [float(lowered.count(chr(code))) for code in range(ord("a"), ord("z") + 1)]
    return [*counts, 1.0]


def _openai_embeddings(
    request: RecordedRequest, behaviour: Behaviour, counted: bool = False
) -> Reply:
    body = request.json or {}
    inputs = body.get("input", [])
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    model = body.get("model") or "fake-embedding"
    tokens = sum(_tiktoken_count(model, str(t)) for t in texts) if counted else PROMPT_TOKENS
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(text, as_base64)}
        for index, text in enumerate(texts)
    ]
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_reply(behaviour.status, payload, behaviour.headers)


def _encoded(text: str, as_base64: bool) -> list[float] | str:
    vector = embedding_vector(text)
    if not as_base64:
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _openai_images(request: RecordedRequest, behaviour: Behaviour, base_url: str) -> Reply:
    body = request.json or {}
    model = body.get("model") or "dall-e-2"
    prompt = body.get("prompt", "")
    count = int(body.get("n") or 1)
    payload: dict[str, Any] = {"created": _CREATED}
    if model.startswith(("gpt-image", "chatgpt-image")):
        encoded = base64.b64encode(PNG_BYTES).decode()
        payload["data"] = [{"b64_json": encoded} for _ in range(count)]
        payload["size"] = body.get("size") or "1024x1024"
        payload["quality"] = body.get("quality") or "medium"
        payload["output_format"] = body.get("output_format") or "png"
        payload["usage"] = {
            "input_tokens": PROMPT_TOKENS,
            "output_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "input_tokens_details": {"text_tokens": PROMPT_TOKENS, "image_tokens": 0},
        }
    else:
        image = {"url": f"{base_url}/files/image-0.png", "revised_prompt": f"revised: {prompt}"}
        payload["data"] = [image for _ in range(count)]
    return json_reply(behaviour.status, payload, behaviour.headers)


class FakeOpenAIServer(FakeServer):
    """OpenAI's /v1 routes, and Azure's /openai/deployments/{deployment}/... on the same server.

    `count_tokens`: report chat and embedding usage counted with tiktoken as OpenAI bills it,
    instead of the fixed PROMPT_TOKENS/COMPLETION_TOKENS.
    """

    def __init__(self, *, count_tokens: bool = False) -> None:
        super().__init__(self._route)
        self.count_tokens = count_tokens
        self.counted: list[CountedChat] = []
        """With `count_tokens`: each chat request's messages and the usage reported for it."""

    @property
    def base_url(self) -> str:
        """What to pass as an OpenAI client's base_url (Azure clients take `url`)."""
        return f"{self.url}/v1"

    def _route(self, request: RecordedRequest, behaviour: Behaviour) -> Reply:
        if behaviour.status >= 400:
            return _openai_error(behaviour.status, behaviour)
        if request.path.endswith("/chat/completions"):
            if self.count_tokens:
                self.counted.append(_counted_chat(request, behaviour))
            return _openai_chat(request, behaviour, self.count_tokens)
        if request.path.endswith("/embeddings"):
            return _openai_embeddings(request, behaviour, self.count_tokens)
        if request.path.endswith("/images/generations"):
            return _openai_images(request, behaviour, self.url)
        if request.path.endswith("/models") and request.method == "GET":
            models = [
                {"id": m, "object": "model", "created": _CREATED, "owned_by": "openai"}
                for m in MODELS["openai"]
            ]
            return json_reply(200, {"object": "list", "data": models})
        return _not_found(request)


# --- Anthropic ---------------------------------------------------------------------------------

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _anthropic_error(status: int, behaviour: Behaviour) -> Reply:
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    message = behaviour.message or f"fake error {status}"
    payload = {"type": "error", "error": {"type": kind, "message": message}}
    return json_reply(status, payload, behaviour.headers)


def _anthropic_messages(request: RecordedRequest, behaviour: Behaviour) -> Reply:
    body = request.json or {}
    text = _answer_text(behaviour, _last_user_text(body.get("messages", [])))
    model = body.get("model") or "claude-fake"
    if body.get("stream"):
        return sse_reply(_anthropic_stream(text, model))
    payload = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
    }
    return json_reply(behaviour.status, payload, behaviour.headers)


def _anthropic_stream(text: str, model: str) -> Iterator[bytes]:
    message: dict[str, Any] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
    }
    yield _sse_event("message_start", {"message": message})
    yield _sse_event(
        "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
    )
    yield _sse_event("ping", {})
    for piece in deltas(text):
        delta = {"type": "text_delta", "text": piece}
        yield _sse_event("content_block_delta", {"index": 0, "delta": delta})
    yield _sse_event("content_block_stop", {"index": 0})
    yield _sse_event(
        "message_delta",
        {
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": COMPLETION_TOKENS},
        },
    )
    yield _sse_event("message_stop", {})


def _sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n".encode()


class FakeAnthropicServer(FakeServer):
    """Anthropic's POST /v1/messages, plain and streamed."""

    def __init__(self) -> None:
        super().__init__(self._route)

    def _route(self, request: RecordedRequest, behaviour: Behaviour) -> Reply:
        if behaviour.status >= 400:
            return _anthropic_error(behaviour.status, behaviour)
        if request.path.endswith("/messages"):
            return _anthropic_messages(request, behaviour)
        if request.path.endswith("/models") and request.method == "GET":
            models = [
                {"id": m, "type": "model", "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
                for m in MODELS["anthropic"]
            ]
            body = {
                "data": models,
                "has_more": False,
                "first_id": models[0]["id"],
                "last_id": models[-1]["id"],
            }
            return json_reply(200, body)
        return _not_found(request)


# --- Gemini ------------------------------------------------------------------------------------

_GEMINI_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


def _gemini_error(status: int, behaviour: Behaviour) -> Reply:
    message = behaviour.message or f"fake error {status}"
    kind = _GEMINI_STATUSES.get(status, "INTERNAL")
    payload = {"error": {"code": status, "message": message, "status": kind}}
    return json_reply(status, payload, behaviour.headers)


def _gemini_prompt(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents", [])):
        if content.get("role", "user") == "user":
            return "".join(part.get("text", "") for part in content.get("parts", []))
    return ""


def _gemini_usage(completion: int) -> dict[str, int]:
    return {
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": completion,
        "totalTokenCount": PROMPT_TOKENS + completion,
    }


def _gemini_chunk(model: str, text: str, finish: str | None, usage: dict[str, int]) -> Any:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
    candidate["index"] = 0
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}


def _gemini_generate(request: RecordedRequest, behaviour: Behaviour) -> Reply:
    model, _, method = request.path.rsplit("/", 1)[-1].partition(":")
    text = _answer_text(behaviour, _gemini_prompt(request.json or {}))
    if method == "streamGenerateContent":
        return sse_reply(_gemini_stream(text, model))
    payload = _gemini_chunk(model, text, "STOP", _gemini_usage(COMPLETION_TOKENS))
    return json_reply(behaviour.status, payload, behaviour.headers)


def _gemini_stream(text: str, model: str) -> Iterator[bytes]:
    pieces = deltas(text)
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        usage = _gemini_usage(COMPLETION_TOKENS if last else 0)
        chunk = _gemini_chunk(model, piece, "STOP" if last else None, usage)
        yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()


class FakeGeminiServer(FakeServer):
    """Gemini's models/{model}:generateContent and :streamGenerateContent?alt=sse."""

    def __init__(self) -> None:
        super().__init__(self._route)

    def _route(self, request: RecordedRequest, behaviour: Behaviour) -> Reply:
        if behaviour.status >= 400:
            return _gemini_error(behaviour.status, behaviour)
        if request.path.endswith((":generateContent", ":streamGenerateContent")):
            return _gemini_generate(request, behaviour)
        if request.path.endswith("/models") and request.method == "GET":
            models = [
                {"name": f"models/{m}", "displayName": m, "supportedActions": ["generateContent"]}
                for m in MODELS["google"]
            ]
            return json_reply(200, {"models": models})
        return _not_found(request)
