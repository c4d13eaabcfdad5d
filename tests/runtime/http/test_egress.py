"""The egress door: refused addresses in every spelling, pinned connections, redirects, caps.

Only 127.0.0.1 is ever connected to. Every refusal is shown to happen before any connection
(the network backend used for them fails the test if called) and before any DNS lookup where
the host is an address (the resolver used for them fails the test too).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from typing import Any

import httpcore2
import pytest

from runtime.egress import (
    Credentials,
    Egress,
    EgressPolicy,
    EgressRefused,
    OutboundRequest,
    ResponseTooLarge,
)
from runtime.egress.addresses import parse_ip, refusal
from runtime.egress.guard import Guard
from tests.runtime.http.servers import Seen, json_reply, serving

LOCAL = EgressPolicy.of(trusted=["127.0.0.1"])

REFUSED_HOSTS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f000001",
    "0x7f.1",
    "0x7f.0.0.1",
    "017700000001",
    "127.0.0.1.",
    "[::1]",
    "::1",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::7f00:1]",
    "0.0.0.0",
    "0",
    "[::]",
    "169.254.169.254",
    "0xa9fea9fe",
    "[fe80::1%25eth0]",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "[fd00::1]",
    "[fd00:ec2::254]",
    "100.64.0.1",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:7f00:1::]",
    "[2002:a00:1::]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "[::ffff:0:a00:1]",
    "224.0.0.1",
    "[ff02::1]",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "metadata.google.internal",
    "printer.local",
]


class NoNetwork(httpcore2.AsyncNetworkBackend):
    """A network backend that fails the test if a connection is ever attempted."""

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a connection to {host}:{port} was attempted")


class Recording(httpcore2.AsyncNetworkBackend):
    """The real backend, refusing (and failing the test) to connect anywhere but loopback."""

    def __init__(self) -> None:
        self.inner = httpcore2.AnyIOBackend()
        self.addresses: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        assert ipaddress.ip_address(host).is_loopback, f"tried to connect to {host}"
        self.addresses.append(host)
        return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)


async def no_lookup(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} was looked up")


def resolver(answers: dict[str, list[list[str]]]) -> Any:
    """Answer each host's lookups in turn from `answers` (the last answer repeats)."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[host][min(calls.count(host), len(answers[host])) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def send(egress: Egress, url: str, **fields: Any) -> Any:
    return asyncio.run(egress.send(OutboundRequest(method="GET", url=url, **fields)))


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_the_checker_refuses_every_spelling_of_a_non_public_host(host: str) -> None:
    with pytest.raises(EgressRefused, match="allowed_hosts"):
        Guard(EgressPolicy(), no_lookup).check_name(host, 8080)


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_a_request_to_a_non_public_host_is_refused_before_any_connection(host: str) -> None:
    egress = Egress(EgressPolicy(), resolve=no_lookup, network_backend=NoNetwork())
    url_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    with pytest.raises(EgressRefused):
        send(egress, f"http://{url_host}:8080/latest/meta-data")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:7f00:1]", "::ffff:127.0.0.1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("08.0.0.1", None),
    ],
)
def test_addresses_are_parsed_the_way_libc_parses_them(text: str, expected: str | None) -> None:
    parsed = parse_ip(text)
    assert (str(parsed) if parsed else None) == expected


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass_the_check(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://x.test/"])
def test_only_http_and_https_are_spoken(url: str) -> None:
    egress = Egress(LOCAL, resolve=no_lookup, network_backend=NoNetwork())
    with pytest.raises(EgressRefused, match="http:// or https://"):
        send(egress, url)


@pytest.mark.parametrize(
    "answer", [["10.0.0.1"], ["169.254.169.254"], ["93.184.216.34", "127.0.0.1"], ["::1"]]
)
def test_a_name_resolving_to_any_non_public_address_is_refused(answer: list[str]) -> None:
    egress = Egress(
        EgressPolicy(), resolve=resolver({"api.test": [answer]}), network_backend=NoNetwork()
    )
    with pytest.raises(EgressRefused, match=r"api\.test"):
        send(egress, "http://api.test/")


def test_the_connection_goes_to_the_checked_address_with_the_host_header_kept() -> None:
    with serving() as server:
        server.route("/x", lambda seen: json_reply(200, {"ok": True}))
        resolve = resolver({"api.test": [["127.0.0.1"]]})
        network = Recording()
        egress = Egress(LOCAL, resolve=resolve, network_backend=network)
        response = send(egress, f"http://api.test:{server.port}/x")
    assert response.status == 200
    assert server.seen[0].headers["host"] == f"api.test:{server.port}"
    assert resolve.calls == ["api.test"]
    assert network.addresses == ["127.0.0.1"]
    assert list(egress.backend.connected) == [("api.test", "127.0.0.1")]


def test_a_rebinding_answer_is_never_connected_to() -> None:
    with serving() as server:
        server.route("/", lambda seen: json_reply(200, {}))
        resolve = resolver({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
        network = Recording()
        egress = Egress(LOCAL, resolve=resolve, network_backend=network)
        assert send(egress, f"http://rebind.test:{server.port}/").status == 200
        assert resolve.calls == ["rebind.test"]  # one lookup for the whole request
        with pytest.raises(EgressRefused, match=r"10\.0\.0\.1"):
            send(egress, f"http://rebind.test:{server.port}/")
    assert network.addresses == ["127.0.0.1"]


@pytest.mark.parametrize("trusted", ["api.test", "*.test", "127.0.0.0/8", "127.0.0.1"])
def test_the_operators_trust_opens_a_private_host_by_name_address_or_range(trusted: str) -> None:
    with serving() as server:
        server.route("/", lambda seen: json_reply(200, {}))
        egress = Egress(
            EgressPolicy.of(trusted=[trusted]),
            resolve=resolver({"api.test": [["127.0.0.1"]]}),
            network_backend=Recording(),
        )
        assert send(egress, f"http://api.test:{server.port}/").status == 200


def test_a_trusted_name_opens_only_the_host_it_names() -> None:
    egress = Egress(
        EgressPolicy.of(trusted=["api.test"]),
        resolve=resolver({"other.test": [["127.0.0.1"]]}),
        network_backend=NoNetwork(),
    )
    with pytest.raises(EgressRefused):
        send(egress, "http://other.test/")


SECRETS = Credentials(
    headers={"Authorization": "Bearer s3cret", "X-API-Key": "k3y", "X-Tenant": "acme"},
    query={"api_key": "q-k3y"},
)


def _redirect_to(location: str) -> Any:
    return lambda seen: (302, {"Location": location}, b"")


def _echo(seen: Seen) -> Any:
    return json_reply(200, {"path": seen.path})


def test_credentials_follow_a_redirect_on_the_same_origin() -> None:
    with serving() as server:
        server.route("/start", _redirect_to("/next"))
        server.route("/next", _echo)
        egress = Egress(LOCAL, resolve=no_lookup, network_backend=Recording())
        response = send(egress, f"{server.url}/start", credentials=SECRETS)
    assert response.status == 200 and response.redirects == 1
    final = server.seen[-1]
    assert final.headers["authorization"] == "Bearer s3cret"
    assert final.headers["x-api-key"] == "k3y"
    assert "api_key=q-k3y" in final.path


def test_a_redirect_to_another_origin_drops_every_credential() -> None:
    with serving() as source, serving() as other:
        target = f"{other.url}/landing?api_key=leaked&keep=1"
        source.route("/start", lambda seen: (302, {"Location": target, "Set-Cookie": "sid=1"}, b""))
        other.route("/landing", _echo)
        egress = Egress(LOCAL, resolve=no_lookup, network_backend=Recording())
        headers = {"Cookie": "session=abc", "Accept": "application/json", "X-Trace": "t1"}
        response = send(egress, f"{source.url}/start", credentials=SECRETS, headers=headers)
    assert response.status == 200
    assert "api_key=q-k3y" in source.seen[0].path
    landed = other.seen[0]
    for name in ("authorization", "x-api-key", "x-tenant", "cookie"):
        assert name not in landed.headers, name
    assert landed.path == "/landing?keep=1"
    assert landed.headers["accept"] == "application/json"
    assert "x-trace" not in landed.headers  # cross-origin, only the safe list goes along


def test_credentials_do_not_come_back_after_a_detour_through_another_origin() -> None:
    with serving() as source, serving() as other:
        source.route("/start", lambda seen: (302, {"Location": f"{other.url}/bounce"}, b""))
        other.route("/bounce", lambda seen: (307, {"Location": f"{source.url}/back"}, b""))
        source.route("/back", _echo)
        egress = Egress(LOCAL, resolve=no_lookup, network_backend=Recording())
        send(egress, f"{source.url}/start", credentials=SECRETS)
    assert "authorization" not in source.seen[-1].headers


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
    ],
)
def test_a_redirect_to_a_refused_address_is_refused(location: str) -> None:
    with serving() as server:
        server.route("/start", _redirect_to(location))
        network = Recording()
        egress = Egress(
            EgressPolicy.of(trusted=["127.0.0.1"]),
            resolve=no_lookup,
            network_backend=network,
        )
        with pytest.raises(EgressRefused):
            send(egress, f"{server.url}/start")
    assert network.addresses == ["127.0.0.1"]


def test_0x7f_1_is_refused_even_when_127_0_0_1_is_allowed_only_by_name() -> None:
    egress = Egress(
        EgressPolicy.of(trusted=["api.test"]),
        resolve=no_lookup,
        network_backend=NoNetwork(),
    )
    with pytest.raises(EgressRefused):
        send(egress, "http://0x7f.1/")


def test_a_redirect_loop_stops_after_five_hops() -> None:
    with serving() as server:
        server.route("/loop", _redirect_to("/loop"))
        egress = Egress(LOCAL, resolve=no_lookup, network_backend=Recording())
        with pytest.raises(EgressRefused, match="More than 5 redirects"):
            send(egress, f"{server.url}/loop")
    assert len(server.seen) == 6


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_past_the_cap_stops_the_read(chunked: bool) -> None:
    def big(seen: Seen) -> Any:
        if not chunked:
            return 200, {"Content-Type": "text/plain"}, b"x" * 5000
        chunks = b"".join(b"%x\r\n%s\r\n" % (500, b"y" * 500) for _ in range(10)) + b"0\r\n\r\n"
        return 200, {"Transfer-Encoding": "chunked"}, chunks

    with serving() as server:
        server.route("/big", big)
        egress = Egress(LOCAL, resolve=no_lookup, max_bytes=1000, network_backend=Recording())
        with pytest.raises(ResponseTooLarge, match="larger than 1000 bytes"):
            send(egress, f"{server.url}/big")


def test_the_timeout_bounds_the_whole_exchange() -> None:
    def slow(seen: Seen) -> Any:
        import time

        time.sleep(0.5)
        return json_reply(200, {})

    with serving() as server:
        server.route("/slow", slow)
        egress = Egress(LOCAL, resolve=no_lookup, network_backend=Recording())
        with pytest.raises(TimeoutError):
            send(egress, f"{server.url}/slow", timeout=0.1)
