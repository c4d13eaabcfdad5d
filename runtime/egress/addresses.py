"""Which addresses a node may reach: every spelling of an IP parsed, every embedding unwrapped.

`refusal(address)` says why an address is not public (loopback, private, link-local, …) or None;
the operator may trust such an address. `never(address)` says why an address is one no trust
opens (a cloud's metadata or wire server, link-local, unspecified), or None.
An address embedded in another one — IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
`2002::/16`, Teredo, IPv4-compatible `::a.b.c.d` — is judged by what it embeds too, because
`ipaddress` calls several of those forms global although they reach the embedded address.
"""

from __future__ import annotations

import ipaddress
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765)
_COMPAT = ipaddress.IPv6Network("::/96")  # IPv4-compatible (deprecated), `::` and `::1` aside
# Ranges Python's `is_global` lets through that no workflow should reach.
_EXTRA_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.IPv4Network("100.64.0.0/10"), "carrier-grade NAT"),
    (ipaddress.IPv4Network("192.0.0.0/24"), "IETF protocol assignment"),
    (ipaddress.IPv4Network("198.18.0.0/15"), "benchmarking"),
    (ipaddress.IPv6Network("fec0::/10"), "site-local"),
)


# Reached by no workflow, whatever the operator trusts: the clouds' instance metadata, credential
# and wire servers. 169.254.0.0/16 holds AWS, GCP, Azure, OCI and OpenStack metadata
# (169.254.169.254), ECS task credentials (169.254.170.2), EKS pod identity (169.254.170.23) and
# Tencent's (169.254.0.23); 168.63.129.16 and 100.100.100.200 are public-looking.
_NEVER: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.IPv4Network("169.254.0.0/16"), "link-local, where cloud metadata services live"),
    (ipaddress.IPv6Network("fe80::/10"), "link-local"),
    (ipaddress.IPv6Network("fd00:ec2::/32"), "AWS's instance metadata range"),
    (ipaddress.IPv4Network("168.63.129.16/32"), "Azure's WireServer"),
    (ipaddress.IPv4Network("100.100.100.200/32"), "Alibaba Cloud's metadata service"),
    (ipaddress.IPv4Network("0.0.0.0/8"), "unspecified (it reaches this machine)"),
    (ipaddress.IPv6Network("::/128"), "unspecified (it reaches this machine)"),
)


def parse_ip(host: str) -> IPAddress | None:
    """The address `host` spells, in any form libc or a browser accepts, or None for a name.

    IPv4 is parsed the way `inet_aton` does: `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` are
    all 127.0.0.1. IPv6 may come in brackets and with a zone (`fe80::1%eth0`).
    """
    text = host.strip().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.replace("%25", "%", 1))
        except ValueError:
            return None
    if not text or not all(c.isascii() and (c.isalnum() or c == ".") for c in text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def embedded(address: IPAddress) -> list[IPAddress]:
    """`address` and every IPv4 address it carries inside it."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv4Address):
        return found
    plain = ipaddress.IPv6Address(address.packed)  # without a zone
    if plain.ipv4_mapped is not None:
        found.append(plain.ipv4_mapped)
    if plain.sixtofour is not None:
        found.append(plain.sixtofour)
    if plain.teredo is not None:
        found.extend(plain.teredo)
    if any(plain in net for net in (*_NAT64, _SIIT)) or (plain in _COMPAT and int(plain) > 1):
        found.append(ipaddress.IPv4Address(int(plain) & 0xFFFFFFFF))
    return found


def refusal(address: IPAddress) -> str | None:
    """Why `address` (or an address it embeds) is not a public unicast address, or None."""
    for candidate in embedded(address):
        reason = _own_refusal(candidate)
        if reason:
            return reason if candidate == address else f"{reason} (embedded {candidate})"
    return None


def never(address: IPAddress) -> str | None:
    """Why `address` (or an address it embeds) is one no trust ever opens, or None."""
    for candidate in embedded(address):
        for network, reason in _NEVER:
            if candidate.version == network.version and candidate in network:
                return reason if candidate == address else f"{reason} (embedded {candidate})"
    return None


def _own_refusal(address: IPAddress) -> str | None:
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local (cloud metadata lives here)"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    )
    for flagged, reason in checks:
        if flagged:
            return reason
    for network, reason in _EXTRA_REFUSED:
        if address.version == network.version and address in network:
            return reason
    return None if address.is_global else "not globally routable"


def in_networks(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    """Whether `address`, or an address it embeds, lies in one of `networks`."""
    return any(
        candidate.version == net.version and candidate in net
        for candidate in embedded(address)
        for net in networks
    )
