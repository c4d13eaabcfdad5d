"""Who may open which non-public host: the operator trusts, a source's allowed_hosts narrows.

A trusted-hosts entry is `host` or `host:port`. `host` is a name (`vllm.corp`, or `*.corp` for
every name under corp), an IP address or a CIDR range (`10.0.0.0/8`); IPv6 goes in brackets when
it has a port (`[fd12::5]:8000`, `[fd12::/48]:443`). No port means any port. A name matches the
URL's host name whatever it resolves to; an address or range matches the address connected to.

A public address is always reachable. A private, loopback or otherwise non-public one is
reachable only when the operator trusts it (`EgressPolicy.trusted`: the operator's settings and the
tenant's admin-set list) and, when the source lists `allowed_hosts`, the source names it too
(`EgressPolicy.allowed`) — host and port, on every hop. An address `never` refuses (cloud
metadata and the like) stays refused whatever either list says.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from runtime.egress.addresses import IPAddress, IPNetwork, in_networks, parse_ip

_NAME = re.compile(r"(?:\*\.)?(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}")
_PORT = re.compile(r"[0-9]{1,5}")


def normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class HostRule:
    """One trusted-hosts (or allowed_hosts) entry; see the module docstring."""

    name: str | None = None
    """A host name, lower-case; `*.corp` matches every name under `corp`."""
    network: IPNetwork | None = None
    """An address (a /32 or /128) or a range."""
    port: int | None = None
    """The one port the entry opens; None: any port."""

    @classmethod
    def parse(cls, entry: str) -> HostRule:
        """Read `host`, `host:port`, `[v6]:port`, an address or a CIDR range.

        Raises:
            ValueError: the entry is none of those; the message says why.
        """
        text = entry.strip().lower()
        if "://" in text:
            raise ValueError(f"{entry!r} is a URL; give its host and port only ('10.0.0.5:8000')")
        host, port = _split_port(text)
        network = _network(host)
        if network is not None:
            return cls(network=network, port=port)
        name = host.rstrip(".")
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"{entry!r} is not a host name, an IP address or a CIDR range (optionally with "
                "':port'; IPv6 in brackets: '[fd12::5]:8000')"
            )
        return cls(name=name, port=port)

    def matches(self, host: str, address: IPAddress | None, port: int) -> bool:
        """Whether the entry opens `port` on `host` (a name as written in the URL) at `address`."""
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return self.names(host)
        return address is not None and self.network is not None and self.covers(address)

    def names(self, host: str) -> bool:
        host = normal_host(host)
        if self.name is None:
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name

    def covers(self, address: IPAddress) -> bool:
        return self.network is not None and in_networks(address, (self.network,))

    def __str__(self) -> str:
        host = self.name or _network_text(self.network)
        return host if self.port is None else f"{host}:{self.port}"


def parse_rules(entries: Iterable[str]) -> tuple[HostRule, ...]:
    """Every entry read (see `HostRule.parse`), duplicates dropped, order kept.

    Raises:
        ValueError: an entry is not one; the message names it.
    """
    return tuple(dict.fromkeys(HostRule.parse(entry) for entry in entries if entry.strip()))


def entry_problem(entry: str) -> str | None:
    """Why `entry` is not a trusted-hosts entry, or None."""
    try:
        HostRule.parse(entry)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Which non-public hosts one source may reach (see the module docstring)."""

    trusted: tuple[HostRule, ...] = ()
    """The operator's: AGENTFLOW_TRUSTED_HOSTS (and, for provider SDKs,
    AGENTFLOW_TRUSTED_PROVIDER_HOSTS and the operator's own base URLs) plus the tenant's list."""
    allowed: tuple[HostRule, ...] | None = None
    """The source's `allowed_hosts`; None when it lists none (no narrowing)."""
    hint: str = ""
    """How a refused private host becomes reachable for this kind of source, said in the
    refusal; empty: the general one (runtime.egress.guard.TRUST_HINT)."""

    @classmethod
    def of(cls, trusted: Iterable[str] = (), allowed: Iterable[str] | None = None) -> EgressPolicy:
        """A policy from entry strings (see `HostRule.parse`; raises ValueError for a bad one)."""
        narrowed = parse_rules(allowed) if allowed is not None else ()
        return cls(trusted=parse_rules(trusted), allowed=narrowed or None)

    def trusts(self, host: str, address: IPAddress | None, port: int) -> bool:
        """Whether the operator trusts `host` (or `address`) on `port`."""
        return any(rule.matches(host, address, port) for rule in self.trusted)

    def narrows_out(self, host: str, address: IPAddress | None, port: int) -> bool:
        """Whether the source lists allowed_hosts and none of them names this host and port."""
        return self.allowed is not None and not any(
            rule.matches(host, address, port) for rule in self.allowed
        )

    def trusts_name(self, host: str, port: int) -> bool:
        """Whether the operator trusts `host` by name on `port` (before any lookup)."""
        return any(
            rule.name is not None and rule.matches(host, None, port) for rule in self.trusted
        )


def _split_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: after ']' only ':port' may follow")
        return host, _port(text, rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(text, port)
    return text, None  # a name, IPv4, or IPv6 without a port


def _port(entry: str, text: str) -> int:
    if not _PORT.fullmatch(text) or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return int(text)


def _network(host: str) -> IPNetwork | None:
    address = parse_ip(host)
    if address is not None:
        return ipaddress.ip_network(ipaddress.ip_address(address.packed))  # without a zone
    if "/" not in host:
        return None
    try:
        return ipaddress.ip_network(host, strict=False)
    except ValueError:
        raise ValueError(f"{host!r} is not a CIDR range") from None


def _network_text(network: IPNetwork | None) -> str:
    if network is None:
        return ""
    single = network.num_addresses == 1
    text = str(network.network_address) if single else str(network)
    return f"[{text}]" if network.version == 6 else text
