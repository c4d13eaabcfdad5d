"""The `http` source kind: requests to one REST API, through the egress door (runtime.egress).

`HTTPSource.request` joins a path onto the source's `base_url`, sends the source's `headers` under
the node's own (a node's header of the same name wins), attaches the source's credentials
(read from the environment at each attempt), and retries with backoff on 429, 5xx and connection
failures only — never on another 4xx — waiting at least what `Retry-After` asks. The last answer
is returned whatever its status; the node decides what a status means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import quote

import httpcore2
import httpx2
from pydantic import JsonValue

from runtime.egress import (
    DEFAULT_MAX_BYTES,
    Egress,
    EgressPolicy,
    EgressResponse,
    OutboundRequest,
    Resolver,
    decode_body,
    has_dot_segment,
    system_resolve,
)
from runtime.errors import NodeError, ProviderError
from runtime.http_auth import TOKEN_CACHE, SourceAuth, TokenCache, source_credentials
from runtime.providers._errors import redact, retry_after_seconds
from runtime.providers.base import EnvLookup
from runtime.source_configs import HTTPConfig

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 2
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 10.0
MAX_RETRY_AFTER = 60.0
"""Longest wait honoured from a `Retry-After` header; a longer ask is waited this long."""
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # RFC 3986 pchar and '/': '?' and '#' are always encoded
_RETRIED_FAILURES = (httpx2.NetworkError, httpx2.ConnectTimeout)


class HTTPProvider(Protocol):
    async def request(
        self,
        method: str,
        path: str = "",
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: JsonValue = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> HTTPResponse: ...


class InvalidPath(NodeError):
    code = "invalid_path"


@dataclass(frozen=True)
class HTTPResponse:
    status: int
    headers: Mapping[str, str]
    body: Any
    """Parsed JSON when the response says it is JSON, else text; None for HEAD."""
    attempts: int = 1


class HTTPSource:
    """An `http` source: `await source.request("GET", "/customers/42")`."""

    kind = "http"

    def __init__(
        self,
        config: HTTPConfig,
        env: EnvLookup,
        *,
        egress: EgressPolicy | None = None,
        resolve: Resolver = system_resolve,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        token_cache: TokenCache = TOKEN_CACHE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        network_backend: httpcore2.AsyncNetworkBackend | None = None,
    ) -> None:
        self.config = config
        self._env = env
        self._sleep = sleep
        self._tokens = token_cache
        # No policy given: public hosts only. RunContext passes the operator's trust, narrowed by
        # the source's allowed_hosts (RunContext.egress_policy).
        policy = egress or EgressPolicy.of(allowed=config.allowed_hosts)
        self.egress = Egress(
            policy, resolve=resolve, max_bytes=max_bytes, network_backend=network_backend
        )

    async def request(
        self,
        method: str,
        path: str = "",
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: JsonValue = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> HTTPResponse:
        """Send one request to the source, retrying what a retry can fix.

        Raises:
            ProviderError: the API could not be reached (retryable) or its token endpoint failed.
            MissingCredential: a variable the source names is not set.
            EgressRefused, ResponseTooLarge, InvalidPath: a request AgentFlow will not make.
        """
        request = OutboundRequest(
            method=method,
            url=self.url(path),
            query=dict(query or {}),
            headers=_merged(self.config.headers, headers or {}),
            json_body=json_body,
            timeout=timeout or self.config.timeout or DEFAULT_TIMEOUT,
        )
        attempts = 1 + (retries if retries is not None else self._default_retries())
        for attempt in range(1, attempts + 1):
            response = await self._attempt(request, last=attempt == attempts)
            if response is not None and not _retry_status(response, attempt == attempts):
                return _parsed(response, method, attempt)
            await self._sleep(_wait(attempt, response))
        raise AssertionError("unreachable: the last attempt returns or raises")

    @property
    def host(self) -> str:
        return _host(self.config.base_url)

    def url(self, path: str) -> str:
        """`base_url` with `path` appended (never resolved against it: no way out of its path)."""
        quoted = quote(path, safe=_PATH_SAFE)
        if has_dot_segment(quoted):
            raise InvalidPath(
                f"The path {path[:200]!r} holds a '.' or '..' segment; HTTP nodes only reach "
                "paths under the source's base_url."
            )
        base = self.config.base_url.rstrip("/")
        return f"{base}/{quoted.lstrip('/')}" if quoted.strip("/") else self.config.base_url

    def _default_retries(self) -> int:
        retries = self.config.max_retries
        return DEFAULT_RETRIES if retries is None else retries

    async def _attempt(self, request: OutboundRequest, *, last: bool) -> EgressResponse | None:
        """One exchange; None after a connection failure that a later attempt may overcome."""
        auth = await source_credentials(self.config, self._env, self.egress, self._tokens)
        try:
            return await self.egress.send(_authorised(request, auth))
        except _RETRIED_FAILURES as exc:
            if last:
                raise self._unreachable(exc, auth) from None
            return None
        except (httpx2.TimeoutException, TimeoutError) as exc:
            raise self._timed_out(request.timeout) from exc
        except httpx2.HTTPError as exc:
            raise self._unreachable(exc, auth) from None

    def _unreachable(self, exc: Exception, auth: SourceAuth) -> ProviderError:
        detail = str(exc) or type(exc).__name__
        for secret in auth.secrets:
            detail = redact(detail, secret)
        return ProviderError(f"Could not reach {self.host}: {detail}", retryable=True)

    def _timed_out(self, timeout: float) -> ProviderError:
        return ProviderError(
            f"{self.host} did not answer within {timeout:g} s; raise the "
            "node's or the source's timeout, or retry later.",
            retryable=True,
        )


def _authorised(request: OutboundRequest, auth: SourceAuth) -> OutboundRequest:
    return replace(request, credentials=auth.credentials)


def _merged(source: Mapping[str, str], node: Mapping[str, str]) -> dict[str, str]:
    """The source's headers, then the node's: a node's header replaces one of the same name."""
    overridden = {name.lower() for name in node}
    kept = {name: value for name, value in source.items() if name.lower() not in overridden}
    return {**kept, **node}


def _retry_status(response: EgressResponse, last: bool) -> bool:
    return not last and (response.status == 429 or response.status >= 500)


def _wait(attempt: int, response: EgressResponse | None) -> float:
    backoff = min(INITIAL_BACKOFF * 2.0 ** (attempt - 1), MAX_BACKOFF)
    asked = retry_after_seconds(response.headers) if response is not None else None
    return max(backoff, min(asked, MAX_RETRY_AFTER)) if asked is not None else backoff


def _parsed(response: EgressResponse, method: str, attempts: int) -> HTTPResponse:
    body = None if method == "HEAD" else decode_body(response.content, response.headers)
    return HTTPResponse(response.status, dict(response.headers), body, attempts)


def _host(url: str) -> str:
    return httpx2.URL(url).host


__all__ = ["HTTPProvider", "HTTPResponse", "HTTPSource", "InvalidPath"]
