"""What a node asks of a provider, and what it gets back — the same for every LLM vendor.

Each source kind has one adapter module under `runtime/providers/`, listed in `PROVIDERS`
(`runtime/providers/__init__.py`). An adapter is built from a validated source config and an
`EnvLookup`; it reads the credential at call time, speaks through the vendor's own SDK, and turns
the SDK's failures into `ProviderError`s that say whether a retry could help.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from runtime.errors import InvalidCredential, InvalidRequest, MissingCredential, ProviderError

__all__ = ["MissingCredential", "ProviderError"]  # re-exported for adapters

_SENDABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
"""What a key sent in an HTTP header may hold: visible ASCII, spaces inside only."""

EnvLookup = Callable[[str], str | None]
"""Read an environment variable by name (None when unset). Injected, so tests need no os.environ."""

OnToken = Callable[[str], Awaitable[None]]
"""Called with each text delta while a streamed answer arrives."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    """None: the source's setting, else the provider's default."""
    max_tokens: int | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: Literal["text", "json"] = "text"
    """`json` asks the provider for a JSON object (OpenAI json_object, Gemini JSON mime type)."""
    stream: bool = False
    """Stream the answer; `on_token` then receives each delta."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResult:
    text: str
    model: str
    """The model that answered, as the provider names it."""
    usage: Usage
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    vectors: tuple[tuple[float, ...], ...]
    model: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class ImageRequest:
    prompt: str
    size: str | None = None
    quality: str | None = None
    style: str | None = None


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    url: str | None = None
    """Where the provider serves the image (DALL·E); None when it sent bytes."""
    data: bytes | None = None
    """The image itself (GPT image models always send base64)."""
    mime_type: str = "image/png"
    revised_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class ImageResult:
    images: tuple[GeneratedImage, ...]
    model: str
    size: str | None
    usage: Usage = field(default_factory=Usage)


class ChatProvider(Protocol):
    async def chat(
        self, request: ChatRequest, *, on_token: OnToken | None = None
    ) -> ChatResult: ...


class EmbeddingProvider(Protocol):
    async def embed(self, texts: list[str]) -> EmbeddingResult: ...


class ImageProvider(Protocol):
    async def generate(self, request: ImageRequest) -> ImageResult: ...


def require_env(env: EnvLookup, name: str | None, *, source_kind: str) -> str:
    """The credential's value, or a `MissingCredential` naming the variable."""
    if not name:
        raise MissingCredential(
            f"The {source_kind} source names no api_key_env; "
            "set it to the variable holding the key."
        )
    value = env(name)
    if not value:
        raise MissingCredential(
            f"The environment variable {name} is not set on the server running this workflow."
        )
    if not _SENDABLE.fullmatch(value):
        # The SDK would fail mid-request, quoting the value in its message; name the variable.
        raise InvalidCredential(
            f"The environment variable {name} holds a line break, a control character, a "
            "non-ASCII character or a space at either end, which an API key cannot carry; set it "
            "to the key alone."
        )
    return value


ProviderConfig = Mapping[str, object]


def check_text(text: str, what: str) -> None:
    """Refuse text no provider can be sent: a lone surrogate (U+D800 to U+DFFF) is not Unicode, and
    comes from JSON such as `"\\ud800"` in a request's state."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start]
        raise InvalidRequest(
            f"{what} holds U+{ord(char):04X}, a lone surrogate, which is not valid Unicode and "
            "cannot be sent; remove it (or send the whole surrogate pair)."
        ) from None
