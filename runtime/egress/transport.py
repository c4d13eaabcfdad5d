"""The egress door for clients that build their own requests: the provider SDKs.

`sdk_client` gives an SDK (openai, anthropic, google-genai) an httpx2 client whose transport is
`SDKTransport`: every connection goes through the same `PinnedBackend` as the http node's (one
lookup, every address checked against the policy, port included, the socket opened to the
checked address), nothing comes from the environment (no proxy, no .netrc), and a redirect is
never followed, whatever the SDK asks per request: it fails the call with `egress_refused`.
"""

from __future__ import annotations

from typing import Any

import httpcore2
import httpx2

from runtime.egress.door import REDIRECTS, PinnedTransport, port_of, safe_url, shared_ssl_context
from runtime.egress.guard import EgressRefused, Guard, PinnedBackend, Resolver, system_resolve
from runtime.egress.trust import EgressPolicy

SDK_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
"""An SDK client is shared by the runs of a process: more connections than one node needs."""


class SDKTransport(httpx2.AsyncBaseTransport):
    """Checks, pins and sends one SDK request; a redirect answer becomes `EgressRefused`."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        provider: str,
        resolve: Resolver = system_resolve,
        network_backend: httpcore2.AsyncNetworkBackend | None = None,
    ) -> None:
        self.provider = provider
        self.guard = Guard(policy, resolve)
        self.backend = PinnedBackend(self.guard, network_backend)
        self._inner = PinnedTransport(self.backend, shared_ssl_context(), SDK_LIMITS)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme not in ("http", "https") or not url.host:
            raise EgressRefused(f"Refused {safe_url(url)}: only http:// and https:// are spoken.")
        self.guard.check_name(url.host, port_of(url))
        response = await self._inner.handle_async_request(request)
        if response.status_code in REDIRECTS and "location" in response.headers:
            location = response.headers["location"]
            await response.aclose()
            raise EgressRefused(
                f"{self.provider} at {safe_url(url)} answered HTTP {response.status_code}, a "
                f"redirect to {_location(url, location)}; AgentFlow does not follow a provider's "
                "redirects (the request, prompt and key included, would go along). Point the "
                "source at the final address."
            )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def sdk_client(
    policy: EgressPolicy,
    *,
    provider: str,
    timeout: float,
    resolve: Resolver = system_resolve,
    network_backend: httpcore2.AsyncNetworkBackend | None = None,
) -> httpx2.AsyncClient:
    """An httpx2 client for a provider SDK's `http_client=` (see the module docstring)."""
    transport = SDKTransport(
        policy, provider=provider, resolve=resolve, network_backend=network_backend
    )
    return httpx2.AsyncClient(
        transport=transport,
        timeout=httpx2.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )


def sync_refusing_client(provider: str) -> httpx2.Client:
    """A synchronous client for SDKs that insist on building one: it refuses every request
    (AgentFlow calls providers asynchronously only, through `sdk_client`)."""
    return httpx2.Client(transport=_Refusing(provider), trust_env=False, follow_redirects=False)


class _Refusing(httpx2.BaseTransport):
    def __init__(self, provider: str) -> None:
        self.provider = provider

    def handle_request(self, request: httpx2.Request) -> Any:
        raise EgressRefused(
            f"{self.provider}: synchronous requests do not go through AgentFlow's egress checks."
        )


def _location(url: httpx2.URL, location: str) -> str:
    try:
        return safe_url(url.join(location))
    except httpx2.InvalidURL:
        return "an invalid URL"
