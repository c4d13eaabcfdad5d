"""Who opens which host: the operator trusts (ports included), a source narrows, metadata never.

Only loopback is ever connected to; refusals are shown to happen before any connection (a network
backend that fails the test if called) or, for redirects, by a listener that accepted nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runtime.egress import (
    Credentials,
    Egress,
    EgressPolicy,
    EgressRefused,
    HostRule,
    OutboundRequest,
)
from runtime.egress.headers import cross_origin, literal_secret
from tests.runtime.http.servers import json_reply, listening, serving
from tests.runtime.http.test_egress import NoNetwork, Recording, no_lookup, resolver

METADATA = [
    "169.254.169.254",
    "0xa9fea9fe",
    "2852039166",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a9fe:a9fe]",
    "[fd00:ec2::254]",
    "[fd00:ec2::23]",
    "169.254.170.2",
    "169.254.170.23",
    "168.63.129.16",
    "[::ffff:168.63.129.16]",
    "100.100.100.200",
    "0.0.0.0",
    "[::]",
    "[fe80::a9fe:a9fe]",
    "metadata.google.internal",
    "metadata.goog",
    "METADATA.GOOGLE.INTERNAL.",
    "instance-data",
]
EVERYTHING = ["0.0.0.0/0", "::/0", "169.254.169.254", "168.63.129.16", "[fd00:ec2::/32]"]
EVERYTHING_BY_NAME = [*EVERYTHING, "metadata.google.internal", "metadata.goog", "instance-data"]


def send(egress: Egress, url: str, **fields: Any) -> Any:
    return asyncio.run(egress.send(OutboundRequest(method="GET", url=url, **fields)))


def url_of(host: str) -> str:
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:80/latest/meta-data/iam/security-credentials/"


@pytest.mark.parametrize("host", METADATA)
def test_metadata_addresses_are_refused_even_when_the_operator_trusts_everything(host: str) -> None:
    for trusted, allowed in [(EVERYTHING_BY_NAME, None), (EVERYTHING_BY_NAME, EVERYTHING)]:
        policy = EgressPolicy.of(trusted, allowed)
        egress = Egress(policy, resolve=no_lookup, network_backend=NoNetwork())
        with pytest.raises(EgressRefused, match="No workflow reaches a cloud's metadata"):
            send(egress, url_of(host))


@pytest.mark.parametrize("answer", ["169.254.169.254", "168.63.129.16", "fd00:ec2::254"])
def test_a_trusted_name_resolving_to_a_metadata_address_is_refused(answer: str) -> None:
    egress = Egress(
        EgressPolicy.of(["vllm.corp"]),
        resolve=resolver({"vllm.corp": [[answer]]}),
        network_backend=NoNetwork(),
    )
    with pytest.raises(EgressRefused, match="metadata"):
        send(egress, "http://vllm.corp/v1")


@pytest.mark.parametrize("allowed", [["0.0.0.0/0"], ["::/0"], ["127.0.0.1"], ["localhost"]])
def test_a_sources_allowed_hosts_alone_opens_nothing(allowed: list[str]) -> None:
    egress = Egress(EgressPolicy.of([], allowed), resolve=no_lookup, network_backend=NoNetwork())
    for url in ("http://127.0.0.1:8000/health", "http://[::1]:8000/", "http://localhost:8000/"):
        with pytest.raises(EgressRefused, match="the operator trusts it"):
            send(egress, url)


def test_a_trusted_port_opens_that_port_only() -> None:
    with serving() as server, listening() as other:
        server.route("/x", lambda seen: json_reply(200, {}))
        policy = EgressPolicy.of([f"127.0.0.1:{server.port}"])
        egress = Egress(policy, resolve=no_lookup, network_backend=Recording())
        assert send(egress, f"{server.url}/x").status == 200
        with pytest.raises(EgressRefused, match=f"port {other.port}"):
            send(egress, f"{other.url}/x")
    assert other.accepted == []


def test_a_redirect_to_another_port_of_a_trusted_host_is_refused() -> None:
    with serving() as server, listening() as other:
        server.route("/start", lambda seen: (302, {"Location": f"{other.url}/admin"}, b""))
        egress = Egress(
            EgressPolicy.of([f"localhost:{server.port}"]),
            resolve=resolver({"localhost": [["127.0.0.1"]]}),
            network_backend=Recording(),
        )
        with pytest.raises(EgressRefused, match=f"port {other.port}"):
            send(egress, f"http://localhost:{server.port}/start")
    assert other.accepted == []
    assert len(server.seen) == 1


def test_allowed_hosts_narrows_the_operators_trust_port_by_port() -> None:
    with serving() as server, listening() as other:
        server.route("/start", lambda seen: (307, {"Location": f"{other.url}/x"}, b""))
        policy = EgressPolicy.of(["127.0.0.0/8"], [f"127.0.0.1:{server.port}"])
        egress = Egress(policy, resolve=no_lookup, network_backend=Recording())
        with pytest.raises(EgressRefused, match="allowed_hosts"):
            send(egress, f"{server.url}/start")
    assert other.accepted == []


def test_an_internal_name_is_looked_up_only_when_the_operator_trusts_it_by_name() -> None:
    refused = Egress(EgressPolicy.of(["127.0.0.1"]), resolve=no_lookup, network_backend=NoNetwork())
    with pytest.raises(EgressRefused, match="internal host name"):
        send(refused, "http://printer.local/")
    with serving() as server:
        server.route("/", lambda seen: json_reply(200, {}))
        trusted = Egress(
            EgressPolicy.of(["printer.local"]),
            resolve=resolver({"printer.local": [["127.0.0.1"]]}),
            network_backend=Recording(),
        )
        assert send(trusted, f"http://printer.local:{server.port}/").status == 200


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("10.0.0.5", HostRule(network=HostRule.parse("10.0.0.5/32").network)),
        ("10.0.0.0/8:8000", HostRule(network=HostRule.parse("10.0.0.0/8").network, port=8000)),
        ("vLLM.Corp:8000", HostRule(name="vllm.corp", port=8000)),
        ("*.corp", HostRule(name="*.corp")),
        ("[fd12::5]:8000", HostRule(network=HostRule.parse("fd12::5").network, port=8000)),
        ("fd12::/48", HostRule(network=HostRule.parse("[fd12::/48]").network)),
        ("2130706433", HostRule(network=HostRule.parse("127.0.0.1").network)),
    ],
)
def test_trusted_host_entries_read_hosts_ports_addresses_and_ranges(
    entry: str, rule: HostRule
) -> None:
    assert HostRule.parse(entry) == rule


@pytest.mark.parametrize(
    "entry", ["http://10.0.0.5", "10.0.0.5:0", "10.0.0.5:99999", "a b", "[::1]x", "10.0.0.0/33"]
)
def test_a_bad_trusted_host_entry_is_refused_with_a_reason(entry: str) -> None:
    with pytest.raises(ValueError, match=r"port|host name|CIDR|after|URL"):
        HostRule.parse(entry)


def test_only_safe_headers_cross_origin_whatever_the_vendor_names_its_key() -> None:
    headers = {
        "Accept": "application/json",
        "User-Agent": "agentflow",
        "X-Goog-Api-Key": "AIza-secret",
        "Ocp-Apim-Subscription-Key": "k",
        "X-Functions-Key": "k",
        "X-Anything-Else": "v",
        "Cookie": "sid=1",
    }
    assert cross_origin(headers) == {"Accept": "application/json", "User-Agent": "agentflow"}


def test_vendor_key_headers_do_not_follow_a_redirect_to_another_origin() -> None:
    with serving() as source, serving() as other:
        source.route("/start", lambda seen: (302, {"Location": f"{other.url}/land"}, b""))
        other.route("/land", lambda seen: json_reply(200, {}))
        egress = Egress(
            EgressPolicy.of(["127.0.0.1"]), resolve=no_lookup, network_backend=Recording()
        )
        headers = {
            "X-Goog-Api-Key": "AIzaSyA-node",
            "Ocp-Apim-Subscription-Key": "0123456789abcdef",
            "X-Functions-Key": "fn-key",
            "Accept": "application/json",
        }
        credentials = Credentials(headers={"X-Custom-Auth": "c"})
        send(egress, f"{source.url}/start", headers=headers, credentials=credentials)
    assert source.seen[0].headers["x-goog-api-key"] == "AIzaSyA-node"
    landed = other.seen[0].headers
    for name in ("x-goog-api-key", "ocp-apim-subscription-key", "x-functions-key", "x-custom-auth"):
        assert name not in landed, name
    assert landed["accept"] == "application/json"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Authorization", "Bearer sk-proj-0123456789abcdef"),
        ("Authorization", "Basic dXNlcjpwYXNzd29yZA=="),
        ("X-Anything", "sk-ant-api03-abcdefghijklmnop"),
        ("X-Goog-Api-Key", "AIzaSyD-1234567890abcdefghijklmnopqrstu"),
        ("Ocp-Apim-Subscription-Key", "3f9a8c1e7b2d4f6a9c0e1b3d5f7a9c2e"),
        ("X-Functions-Key", "q8Zp3LmN7vR2tY6wK1xB4cD9"),
        ("X-Auth", "Bearer {{ user }} ghp_0123456789abcdefghijklmnopqrstuvwxyz"),
    ],
)
def test_a_literal_credential_in_a_header_is_recognised(name: str, value: str) -> None:
    reason = literal_secret(name, value)
    assert reason is not None and name in reason and value not in reason


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Authorization", "Bearer {{ token }}"),
        ("X-Api-Key", "{{ metadata.key }}"),
        ("Accept", "application/vnd.github+json"),
        ("X-Request-Id", "r-{{ run_id }}-0123456789abcdef"),
        ("X-Api-Key-Version", "2024-06-01"),
    ],
)
def test_templates_and_ordinary_values_are_not_secrets(name: str, value: str) -> None:
    assert literal_secret(name, value) is None
