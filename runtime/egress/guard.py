"""The check between a host name and a socket: resolve once, judge every address, connect to it.

`PinnedBackend` is an httpcore2 network backend. httpcore2 hands it the URL's host and port; it
resolves the host itself (one lookup), refuses the connection when any resolved address is one
the policy does not open for this port (runtime.egress.trust), then connects to the checked
addresses and nothing else. TLS still runs against the URL's host name (httpcore2 passes it as
`server_hostname`), so SNI and certificate checks are unchanged, and the Host header is the
URL's. With the lookup and the connect in one call there is no window for DNS rebinding.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

from runtime.egress.addresses import IPAddress, never, parse_ip, refusal
from runtime.egress.trust import EgressPolicy, normal_host
from runtime.errors import NodeError

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolve a host name and port to IP address strings (injected in tests)."""

# Names of cloud metadata services: refused whatever the operator trusts.
NEVER_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "metadata.packet.net",
    }
)
# Names that reach this machine or a private network, refused before any lookup (a `.local`
# lookup would also send multicast DNS onto the local network) unless the operator trusts the
# name itself.
BLOCKED_NAMES = frozenset({"localhost", "kubernetes.default"})
BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".svc")
DEFAULT_PORTS = {"http": 80, "https": 443}
RECENT = 64
"""Lookups and connections a guard remembers (an SDK's lives as long as the process)."""
TRUST_HINT = (
    "Tenants reach public addresses only; a private or loopback host is reachable only when the "
    "operator trusts it (AGENTFLOW_TRUSTED_HOSTS, or the tenant's trusted hosts) and, when the "
    "source lists allowed_hosts, the source names it too."
)
PROVIDER_HINT = (
    "A provider's base_url on a private or loopback host (a gateway, a local model server) is "
    "reachable only when the operator lists that host, with its port, in "
    "AGENTFLOW_TRUSTED_PROVIDER_HOSTS (or in the tenant's trusted hosts)."
)
"""The hint of a provider source's policy: allowed_hosts is the http kind's, not theirs."""


class EgressRefused(NodeError):
    """An outbound request AgentFlow will not send (a private address, a bad scheme…)."""

    code = "egress_refused"


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolve with the system's getaddrinfo, in a thread so the event loop keeps running."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass
class Guard:
    """Resolves a host once and returns only addresses the policy lets a node reach."""

    policy: EgressPolicy
    resolve: Resolver = system_resolve
    lookups: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))
    """The hosts looked up lately, in order (for tests and traces)."""

    def check_name(self, host: str, port: int) -> None:
        """Refuse, before any lookup, a host spelled as a refused address or a refused name."""
        name = normal_host(host)
        if name in NEVER_NAMES:
            raise EgressRefused(_never(host, "a cloud metadata service's name"))
        address = parse_ip(host)
        if address is not None:
            self.check_address(host, address, port)
            return
        internal = name in BLOCKED_NAMES or name.endswith(BLOCKED_SUFFIXES)
        if internal and not self.policy.trusts_name(host, port):
            raise EgressRefused(
                f"Refused to connect to {host} port {port}: it is an internal host name. "
                f"{self.policy.hint or TRUST_HINT}"
            )

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`, every one of them checked."""
        self.check_name(host, port)
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
        return [self._checked(host, text, port) for text in found]

    def _checked(self, host: str, text: str, port: int) -> str:
        address = parse_ip(text)
        if address is None:
            raise EgressRefused(f"The resolver returned {text!r} for {host}, which is not an IP.")
        self.check_address(host, address, port)
        return str(address)

    def check_address(self, host: str, address: IPAddress, port: int) -> None:
        """Refuse `address` (what `host` is, or resolved to) unless the policy lets it through."""
        forbidden = never(address)
        if forbidden:
            raise EgressRefused(_never(host, f"{address}: {forbidden}"))
        reason = refusal(address)
        if reason is None:
            return
        if not self.policy.trusts(host, address, port):
            raise EgressRefused(
                f"Refused to connect to {host} port {port}: it is a {reason} address "
                f"({address}). {self.policy.hint or TRUST_HINT}"
            )
        if self.policy.narrows_out(host, address, port):
            listed = ", ".join(str(rule) for rule in self.policy.allowed or ())
            raise EgressRefused(
                f"Refused to connect to {host} port {port} ({address}): the source's "
                f"allowed_hosts ({listed}) does not name it with this port."
            )


def _never(host: str, what: str) -> str:
    return (
        f"Refused to connect to {host}: {what}. No workflow reaches a cloud's metadata, "
        "credential or wire-server addresses, whatever the operator's trusted hosts or a "
        "source's allowed_hosts say."
    )


class PinnedBackend(AsyncNetworkBackend):
    """Connects only to addresses the guard checked, resolving each host exactly once."""

    def __init__(self, guard: Guard, inner: AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore2.AnyIOBackend()
        self.connected: deque[tuple[str, str]] = deque(maxlen=RECENT)
        """(host, address) of the connections opened lately."""

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
    """Refuse, before any lookup, a URL AgentFlow will not request: a scheme other than http(s),
    no host, a host name IDNA cannot encode, or a host spelled as (or named like) a refused
    address. Addresses a name resolves to are checked when the connection opens."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise EgressRefused(f"Refused {url[:200]!r}: it is not a valid URL ({exc}).") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise EgressRefused(f"Refused {url[:200]!r}: use an http:// or https:// URL with a host.")
    host = parts.hostname
    if parse_ip(host) is None:
        try:
            host.encode("idna")
        except UnicodeError:  # an empty or a 64+ character label
            raise EgressRefused(
                f"Refused {url[:200]!r}: {host[:100]!r} is not a valid host name."
            ) from None
    Guard(policy).check_name(host, port or DEFAULT_PORTS[parts.scheme])
