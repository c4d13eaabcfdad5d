"""What every adapter shares: request timeouts and retries, one cached SDK client, and the egress
door (runtime.egress.transport) that client's requests go through."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from runtime.egress.transport import sdk_client
from runtime.egress.trust import EgressPolicy
from runtime.providers.base import ChatMessage, ChatRequest, EnvLookup, require_env

DEFAULT_TIMEOUT = 60.0
"""Seconds per request when the source sets none (the SDKs' own default is 600 s)."""
DEFAULT_MAX_RETRIES = 2
"""Retries inside the SDK (on 408/409/429/5xx and connection errors) before a failure reaches us."""
OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
GEMINI_URL = "https://generativelanguage.googleapis.com/"
# Passed when a source names no base_url, so that the SDKs do not take one from the server's
# environment (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, GOOGLE_GEMINI_BASE_URL) and send a tenant's
# key to a host its source never named.

if TYPE_CHECKING:
    import httpcore2
    import httpx2


@dataclass(frozen=True, slots=True)
class Transport:
    """How long one request may take, and how often the SDK retries it."""

    timeout: float
    """Seconds per request."""
    max_retries: int
    """Retries inside the SDK; the node's own `retry` policy comes on top."""

    @classmethod
    def of(
        cls,
        config: object,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> Transport:
        """Explicit arguments first, then the config's `timeout`/`max_retries`, then defaults."""
        chosen_timeout = first(timeout, getattr(config, "timeout", None))
        chosen_retries = first(max_retries, getattr(config, "max_retries", None))
        return cls(
            timeout=float(chosen_timeout) if chosen_timeout is not None else default_timeout,
            max_retries=int(chosen_retries) if chosen_retries is not None else DEFAULT_MAX_RETRIES,
        )


def first[T](*values: T | None) -> T | None:
    """The first value that is not None (a node's override before the source's setting)."""
    return next((value for value in values if value is not None), None)


def system_text(request: ChatRequest) -> str | None:
    """The system messages joined, for providers that take the system prompt apart."""
    parts = [message.content for message in request.messages if message.role == "system"]
    return "\n\n".join(parts) or None


def conversation(request: ChatRequest) -> list[ChatMessage]:
    return [message for message in request.messages if message.role != "system"]


class ClientCache[C]:
    """One SDK client per adapter, built on first use; rebuilt when the key or event loop changes.

    A worker runs each task under its own `asyncio.run`, and an SDK client's connection pool
    belongs to the loop it was first used on: reusing it from another loop fails.
    """

    def __init__(self, build: Callable[[str], C]) -> None:
        self._build = build
        self._key: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: C | None = None

    def get(self, key: str) -> C:
        loop = asyncio.get_running_loop()
        if self._client is None or key != self._key or loop is not self._loop:
            self._client = self._build(key)
            self._key, self._loop = key, loop
        return self._client

    def take(self) -> C | None:
        """Forget the client and hand it over (to be closed)."""
        client, self._client, self._key, self._loop = self._client, None, None, None
        return client


class SDKAdapter[C]:
    """What every provider adapter shares: its config, where credentials are read, how long a
    request may take, which hosts it may reach, and one SDK client (rebuilt per key and event
    loop), closed by `aclose`."""

    kind: ClassVar[str]
    provider: ClassVar[str]
    """The vendor's name, for messages."""
    default_timeout: ClassVar[float] = DEFAULT_TIMEOUT

    def __init__(
        self,
        config: Any,
        env: EnvLookup,
        *,
        egress: EgressPolicy | None = None,
        network_backend: httpcore2.AsyncNetworkBackend | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        self.config = config
        self._env = env
        self.egress = egress or EgressPolicy()
        """Non-public hosts the SDK may reach: none unless RunContext passes the operator's."""
        self._network_backend = network_backend
        self._transport = Transport.of(
            config, timeout=timeout, max_retries=max_retries, default_timeout=self.default_timeout
        )
        self._clients: ClientCache[C] = ClientCache(self._build)

    def _key(self) -> str:
        return require_env(self._env, self.config.api_key_env, source_kind=self.kind)

    def _build(self, key: str) -> C:
        raise NotImplementedError

    def _http_client(self) -> httpx2.AsyncClient:
        """The SDK's HTTP client: every request through the egress door, no redirect followed."""
        return sdk_client(
            self.egress,
            provider=self.provider,
            timeout=self._transport.timeout,
            network_backend=self._network_backend,
        )

    async def aclose(self) -> None:
        client = self._clients.take()
        if client is not None:
            await self._close(client)

    async def _close(self, client: C) -> None:
        await client.close()  # type: ignore[attr-defined]
