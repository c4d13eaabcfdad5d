"""The one door every outbound HTTP request of a node goes through.

`Egress.send` refuses schemes other than http/https, connects only to checked public addresses
(or non-public ones its policy opens; see `runtime.egress.trust`), follows at most
`max_redirects` redirects by hand — checking each hop the same way, port included — and
attaches a request's credentials only while every hop so far stayed on the credentials' own
origin (scheme, host, port). Once a hop leaves that origin, only the headers
`runtime.egress.headers.CROSS_ORIGIN_SAFE` names go along. A body past `max_bytes` stops the
read; `timeout` bounds the whole exchange, redirects and body included.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpcore2
import httpx2
from pydantic import JsonValue

from runtime.egress.guard import (
    DEFAULT_PORTS,
    EgressRefused,
    Guard,
    PinnedBackend,
    Resolver,
    system_resolve,
)
from runtime.egress.headers import cross_origin, header_problem
from runtime.egress.trust import EgressPolicy
from runtime.errors import InvalidCredential, InvalidRequest, NodeError

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
SCHEMES = frozenset(DEFAULT_PORTS)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
NODE_LIMITS = httpx2.Limits(max_connections=10)
"""Connections one http source's request may hold open (the pool lives for one request)."""
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


class _NoQueryInLogs(logging.Filter):
    """httpx2 logs each request's full URL; an api_key query parameter must not reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], httpx2.URL):
            record.args = (args[0], safe_url(args[1]), *args[2:])
        return True


logging.getLogger("httpx2").addFilter(_NoQueryInLogs())


class ResponseTooLarge(NodeError):
    code = "response_too_large"


Origin = tuple[str, str, int]


def origin_of(url: httpx2.URL) -> Origin:
    return (url.scheme, url.host.lower(), port_of(url))


def port_of(url: httpx2.URL) -> int:
    return url.port or DEFAULT_PORTS.get(url.scheme, 0)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One client TLS context for every egress client: building one loads the CA bundle (about
    20 ms). SSL_CERT_FILE/SSL_CERT_DIR are honoured (an operator's own CA); proxies are not."""
    return httpx2.create_ssl_context(trust_env=True)


@dataclass(frozen=True)
class Credentials:
    """What proves who we are: sent only to `origin` (the source's base_url, or token_url)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    url: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json_body: JsonValue = None
    form: Mapping[str, str] | None = None
    credentials: Credentials = field(default_factory=Credentials)
    timeout: float = 30.0
    follow_redirects: bool = True


@dataclass(frozen=True)
class EgressResponse:
    status: int
    headers: httpx2.Headers
    content: bytes
    url: str
    redirects: int = 0


@dataclass(frozen=True)
class _Hop:
    method: str
    url: httpx2.URL
    headers: Mapping[str, str]
    content: bytes | None
    trusted: bool


class PinnedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport over a connection pool whose every socket comes from `backend`."""

    def __init__(
        self,
        backend: PinnedBackend,
        ssl_context: ssl.SSLContext,
        limits: httpx2.Limits = NODE_LIMITS,
    ) -> None:
        # Hand over the context built once: the default would load the CA bundle again, about
        # 20 ms for every request.
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl_context,
            network_backend=backend,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
        )


class Egress:
    """Sends requests to checked addresses only; see the module docstring."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolve: Resolver = system_resolve,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        network_backend: httpcore2.AsyncNetworkBackend | None = None,
    ) -> None:
        self.guard = Guard(policy, resolve)
        self.backend = PinnedBackend(self.guard, network_backend)
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._ssl = shared_ssl_context()

    async def send(self, request: OutboundRequest) -> EgressResponse:
        """Send `request`, following redirects, and return the final answer with its body read.

        Raises:
            EgressRefused: a scheme, host or address AgentFlow does not reach, or a redirect loop.
            ResponseTooLarge: the body is longer than `max_bytes`.
            TimeoutError: the whole exchange took longer than `request.timeout`.
            httpx2.TransportError: the connection failed.
        """
        hop = self._first_hop(request)
        async with asyncio.timeout(request.timeout), self._client(request.timeout) as client:
            for redirects in range(self.max_redirects + 1):
                response = await self._exchange(client, hop, request.credentials)
                if isinstance(response, EgressResponse):
                    return replace(response, redirects=redirects)
                if not request.follow_redirects:
                    raise EgressRefused(
                        f"{safe_url(hop.url)} answered with a redirect; not followed."
                    )
                hop = self._next_hop(hop, response, origin_of(httpx2.URL(request.url)))
        raise EgressRefused(f"More than {self.max_redirects} redirects from {request.url}.")

    def _client(self, timeout: float) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=PinnedTransport(self.backend, self._ssl),
            timeout=httpx2.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,  # no proxy, no .netrc: nothing from the environment joins a request
        )

    def _first_hop(self, request: OutboundRequest) -> _Hop:
        url = self._checked_url(request.url).copy_merge_params(dict(request.query))
        _check_headers(request)
        headers = dict(request.headers)
        content: bytes | None = None
        if request.form is not None:
            content = str(httpx2.QueryParams(dict(request.form))).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif request.json_body is not None:
            content = json.dumps(request.json_body, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        return _Hop(request.method, url, headers, content, trusted=True)

    def _checked_url(self, raw: str | httpx2.URL) -> httpx2.URL:
        try:
            url = httpx2.URL(raw)
        except httpx2.InvalidURL as exc:
            raise EgressRefused(
                f"{str(raw)[:200]!r} is not a URL AgentFlow can request: {exc}."
            ) from None
        if url.scheme not in SCHEMES or not url.host:
            raise EgressRefused(
                f"Refused {safe_url(url)}: only http:// or https:// URLs with a host are requested."
            )
        self.guard.check_name(url.host, port_of(url))
        return url

    async def _exchange(
        self, client: httpx2.AsyncClient, hop: _Hop, credentials: Credentials
    ) -> EgressResponse | httpx2.Response:
        client.cookies.clear()  # a cookie set on one port would otherwise go to another
        request = client.build_request(
            hop.method,
            _with_credentials(hop, credentials),
            headers=_headers(hop, credentials),
            content=hop.content,
        )
        response = await client.send(request, stream=True)
        try:
            if response.status_code in REDIRECTS and "location" in response.headers:
                return response
            body = await _read_capped(response, self.max_bytes, safe_url(hop.url))
        finally:
            await response.aclose()
        return EgressResponse(response.status_code, response.headers, body, safe_url(hop.url))

    def _next_hop(self, hop: _Hop, response: httpx2.Response, trusted_origin: Origin) -> _Hop:
        try:
            target = hop.url.join(response.headers["location"])
        except httpx2.InvalidURL as exc:
            raise EgressRefused(
                f"{safe_url(hop.url)} redirected to an invalid URL: {exc}."
            ) from exc
        url = self._checked_url(target)
        method, content = hop.method, hop.content
        status = response.status_code
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, content = "GET", None
        trusted = hop.trusted and origin_of(url) == trusted_origin
        headers = {k: v for k, v in hop.headers.items() if content or k.lower() != "content-type"}
        return _Hop(method, url, headers, content, trusted)


def _check_headers(request: OutboundRequest) -> None:
    """Refuse before sending what the HTTP library would refuse mid-request (as a connection
    failure, with the value — maybe a credential — in its message)."""
    for name, value in request.headers.items():
        problem = header_problem(name, value)
        if problem:
            raise InvalidRequest(f"Not sent: {problem}.")
    for name, value in request.credentials.headers.items():
        problem = header_problem(name, value)
        if problem:
            raise InvalidCredential(
                f"Not sent: {problem}. It comes from the source's credentials: check the "
                "variables its auth settings name (api_key_env, token_env, …) and api_key_header."
            )


def _with_credentials(hop: _Hop, credentials: Credentials) -> httpx2.URL:
    if hop.trusted:
        return hop.url.copy_merge_params(dict(credentials.query))
    url = hop.url
    for name in credentials.query:
        url = url.copy_remove_param(name)
    return url


def _headers(hop: _Hop, credentials: Credentials) -> dict[str, str]:
    if hop.trusted:
        return {**hop.headers, **credentials.headers}
    return cross_origin(hop.headers)


async def _read_capped(response: httpx2.Response, max_bytes: int, where: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(where, max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded: a gzip bomb counts at its real size
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(where, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(where: str, max_bytes: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"The response from {where} is larger than {max_bytes} bytes; ask the API for less "
        "(a page, fewer fields)."
    )


def safe_url(url: httpx2.URL) -> str:
    """The URL without its query string or user info, which may carry credentials."""
    return str(url.copy_with(query=None, userinfo=b"", fragment=None))


def has_dot_segment(path: str) -> bool:
    """Whether `path` holds a `.` or `..` segment (spelled plainly or percent-encoded)."""
    return bool(_DOT_SEGMENT.search(path.split("?", 1)[0]))


def decode_body(content: bytes, headers: httpx2.Headers) -> Any:
    """The body as JSON when it says so (and parses), else as text."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    text = content.decode(_charset(headers), errors="replace")
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to read
            return text
    return text


def _charset(headers: httpx2.Headers) -> str:
    match = re.search(r"charset=\"?([\w-]+)", headers.get("content-type", ""), re.IGNORECASE)
    if match:
        try:
            return codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return "utf-8"
