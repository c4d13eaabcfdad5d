"""The check between a host name and a socket: resolve once, judge every address, connect to it.

`PinnedBackend` is an httpcore2 network backend. httpcore2 hands it the URL's host; it resolves
the host itself (one lookup), refuses the connection when any resolved address is not public and
not allowed, then connects to the checked addresses and nothing else. TLS still runs against
the URL's host name (httpcore2 passes it as `server_hostname`), so SNI and certificate checks
are unchanged, and the Host header is the URL's. With the lookup and the connect in one call
there is no window for DNS rebinding.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

from runtime.egress_addresses import IPAddress, IPNetwork, in_networks, parse_ip, refusal
from runtime.errors import NodeError

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolve a host name and port to IP address strings (injected in tests)."""

# Names that reach this machine, a private network or a cloud's metadata service, refused before
# any lookup (a `.local` lookup would also send multicast DNS onto the local network).
BLOCKED_NAMES = frozenset(
    {"localhost", "metadata", "metadata.google.internal", "instance-data", "kubernetes.default"}
)
BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".svc")


class EgressRefused(NodeError):
    """An outbound request AgentFlow will not send (a private address, a bad scheme…)."""

    code = "egress_refused"


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolve with the system's getaddrinfo, in a thread so the event loop keeps running."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class EgressPolicy:
    """Which non-public hosts a source may reach (its `allowed_hosts`)."""

    names: frozenset[str] = frozenset()
    """Host names reached whatever they resolve to (`*.corp.example` names a whole domain)."""
    networks: tuple[IPNetwork, ...] = ()
    """Addresses (or CIDR ranges) allowed although private or loopback."""

    @classmethod
    def from_allowed_hosts(cls, entries: Iterable[str]) -> EgressPolicy:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            network = _network(entry)
            if network is None:
                names.add(normal_host(entry))
            else:
                networks.append(network)
        return cls(names=frozenset(names), networks=tuple(networks))

    def names_host(self, host: str) -> bool:
        host = normal_host(host)
        return host in self.names or any(
            name.startswith("*.") and host.endswith(name[1:]) for name in self.names
        )

    def allows(self, address: IPAddress) -> bool:
        return refusal(address) is None or in_networks(address, self.networks)


def _network(entry: str) -> IPNetwork | None:
    text = normal_host(entry)
    address = parse_ip(text)
    if address is not None:
        return ipaddress.ip_network(address)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@dataclass
class Guard:
    """Resolves a host once and returns only addresses the policy lets a node reach."""

    policy: EgressPolicy
    resolve: Resolver = system_resolve
    lookups: list[str] = field(default_factory=list)
    """Every host looked up, in order (for tests and traces)."""

    def check_name(self, host: str) -> None:
        """Refuse, before any lookup, a host spelled as a refused address or a refused name."""
        if self.policy.names_host(host):
            return
        address = parse_ip(host)
        if address is not None:
            self._check_address(host, address)
            return
        name = normal_host(host)
        if name in BLOCKED_NAMES or name.endswith(BLOCKED_SUFFIXES):
            raise EgressRefused(_message(host, "an internal host name"))

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`, every one of them checked."""
        self.check_name(host)
        literal = parse_ip(host)
        if literal is not None:
            return [str(literal)]
        self.lookups.append(host)
        try:
            found = await self.resolve(host, port)
        except OSError as exc:
            raise httpcore2.ConnectError(f"Could not resolve {host}: {exc}") from exc
        if not found:
            raise httpcore2.ConnectError(f"{host} resolved to no address.")
        return [self._checked(host, text) for text in found]

    def _checked(self, host: str, text: str) -> str:
        address = parse_ip(text)
        if address is None:
            raise EgressRefused(f"The resolver returned {text!r} for {host}, which is not an IP.")
        if not self.policy.names_host(host):
            self._check_address(host, address)
        return str(address)

    def _check_address(self, host: str, address: IPAddress) -> None:
        if not self.policy.allows(address):
            reason = refusal(address)
            raise EgressRefused(_message(host, f"a {reason} address ({address})"))


def _message(host: str, what: str) -> str:
    return (
        f"Refused to connect to {host}: it is {what}. HTTP nodes reach public addresses only; "
        "list the host in the source's allowed_hosts if this workflow must reach it."
    )


class PinnedBackend(AsyncNetworkBackend):
    """Connects only to addresses the guard checked, resolving each host exactly once."""

    def __init__(self, guard: Guard, inner: AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore2.AnyIOBackend()
        self.connected: list[tuple[str, str]] = []
        """(host, address) of every connection opened."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        last: Exception | None = None
        for address in await self.guard.addresses(host, port):
            try:
                stream = await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
                continue
            self.connected.append((host, address))
            return stream
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        raise EgressRefused("HTTP nodes do not connect to Unix sockets.")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def check_url(url: str, policy: EgressPolicy) -> None:
    """Refuse a URL whose host is, or resolves to, an address the policy does not allow (for
    clients that connect by themselves, such as the provider SDKs). Resolves synchronously."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise EgressRefused(f"Refused {url[:200]!r}: it is not a valid URL ({exc}).") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressRefused(f"Refused {url[:200]!r}: use an http:// or https:// URL with a host.")
    guard = Guard(policy)
    host = parts.hostname
    guard.check_name(host)
    if parse_ip(host) is not None or policy.names_host(host):
        return
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, port or 443)}
    except UnicodeError:  # the IDNA codec refuses the name (an empty or a 64+ character label)
        raise EgressRefused(
            f"Refused {url[:200]!r}: {host[:100]!r} is not a valid host name."
        ) from None
    except OSError:
        return  # unresolvable here: the SDK's own connection will fail and say so
    for text in found:
        guard._checked(host, str(text).split("%")[0])
