"""What a tenant's workflow may reach, through the API with an executor key (issue 13, egress).

Trust in a private or loopback host is the operator's (AGENTFLOW_TRUSTED_HOSTS, a tenant's
trusted_hosts); a spec's allowed_hosts only narrows it; cloud metadata is never reached. Every
refusal is a named error, and a bare listener (or the recording network backend every test here
runs under) shows that no connection was made where none should be. Nothing but loopback is ever
connected to: the recording backend refuses, and reports, any other address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpcore2
import pytest
from django.test import override_settings

from runtime import loop
from runtime.providers.shared import shared_adapters
from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeAnthropicServer, FakeGeminiServer, FakeOpenAIServer
from tests.runtime.http.servers import Seen, json_reply, listening, serving

pytestmark = pytest.mark.django_db
URL = "/api/v1/workflows/execute"
_REAL_BACKEND = httpcore2.AnyIOBackend


@dataclass
class Network:
    """Every connection AgentFlow's egress door opened or tried, by address and port."""

    attempts: list[tuple[str, int]] = field(default_factory=list)

    def outside_loopback(self) -> list[tuple[str, int]]:
        return [(h, p) for h, p in self.attempts if not ipaddress.ip_address(h).is_loopback]


@pytest.fixture(autouse=True)
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    """The egress door's sockets come from this backend: it records each address and connects
    to loopback only (anything else fails as a connection error, and the test says so)."""
    seen = Network()

    class Recording(httpcore2.AsyncNetworkBackend):
        def __init__(self) -> None:
            self.inner = _REAL_BACKEND()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore2.AsyncNetworkStream:
            seen.attempts.append((host, port))
            if not ipaddress.ip_address(host).is_loopback:
                raise httpcore2.ConnectError(f"the test network refuses {host}")
            return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

        async def sleep(self, seconds: float) -> None:
            await self.inner.sleep(seconds)

    monkeypatch.setattr(httpcore2, "AnyIOBackend", Recording)
    return seen


@pytest.fixture(autouse=True)
def _no_provider_client_outlives_its_test() -> Iterator[None]:
    """Runs lease SDK clients on the runtime loop; close them, so no later test finds them."""
    yield
    loop.run(_close_shared())


async def _close_shared() -> None:
    await shared_adapters().aclose()


def execute(key: IssuedKey, spec: dict[str, Any], state: dict[str, Any] | None = None) -> Any:
    body = {"workflow": spec, "initial_state": state or {}, "mode": "sync"}
    return client_for(key).post(URL, body, format="json")


def http_spec(config: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    node = {"source": "api", "path": "/x", "retries": 0, "timeout": 5, **metadata}
    return {
        "name": "egress",
        "start_node": "call",
        "nodes": [{"id": "call", "type": "http", "metadata": node}],
        "edges": [],
        "sources": [{"id": "api", "kind": "http", "config": {"max_retries": 0, **config}}],
    }


def refused(response: Any) -> str:
    """The run's error message, after checking the run failed with egress_refused."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "failed", body
    assert body["error"]["code"] == "egress_refused", body["error"]
    assert body["error"]["node_id"] == "call"
    return str(body["error"]["message"])


def succeeded(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    assert body["status"] == "success", body.get("error")
    return body


def _echo(seen: Seen) -> Any:
    return json_reply(200, {"headers": seen.headers})


# --- a spec cannot open what the operator did not ----------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", ["0.0.0.0/0"]),
        ("::1", ["::/0"]),
        ("127.0.0.1", ["127.0.0.1"]),
        ("127.0.0.1", ["localhost", "127.0.0.0/8", "[::ffff:127.0.0.1]"]),
    ],
)
def test_allowed_hosts_in_a_spec_opens_no_private_host(
    executor_key: IssuedKey, network: Network, host: str, allowed: list[str]
) -> None:
    with listening(host) as private:  # a private service, or AgentFlow's own /health
        message = refused(
            execute(
                executor_key,
                http_spec({"base_url": f"{private.url}/health", "allowed_hosts": allowed}),
            )
        )
    assert "the operator trusts it" in message and "AGENTFLOW_TRUSTED_HOSTS" in message
    assert private.accepted == []
    assert network.attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://168.63.129.16/machine?comp=goalstate",
        "http://100.100.100.200/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
        "http://0xa9fea9fe/",
    ],
)
def test_metadata_addresses_are_never_reached_even_when_everyone_trusts_them(
    tenant: Any, executor_key: IssuedKey, settings: Any, network: Network, url: str
) -> None:
    everything = [
        "0.0.0.0/0",
        "::/0",
        "169.254.169.254",
        "168.63.129.16",
        "metadata.google.internal",
    ]
    settings.AGENTFLOW_TRUSTED_HOSTS = everything
    tenant.trusted_hosts = everything
    tenant.save()
    config = {"base_url": url, "allowed_hosts": [*everything, "100.100.100.200", "[fd00:ec2::254]"]}
    message = refused(execute(executor_key, http_spec(config)))
    assert "No workflow reaches a cloud's metadata" in message
    assert network.attempts == []  # refused before any connection


# --- the operator's trust: hosts and ports ------------------------------------------------------


def test_a_host_the_operator_trusts_is_reached(executor_key: IssuedKey, settings: Any) -> None:
    with serving() as api:
        api.route("/api/x", _echo)
        settings.AGENTFLOW_TRUSTED_HOSTS = [f"127.0.0.1:{api.port}"]
        body = succeeded(execute(executor_key, http_spec({"base_url": f"{api.url}/api"})))
    assert body["final_state"]["http_result"]["status"] == 200


def test_a_tenants_trusted_hosts_open_a_host_for_that_tenant_only(
    tenant: Any, executor_key: IssuedKey, other_tenant: Any, network: Network
) -> None:
    from tests.conftest import issue_key

    other_key = issue_key(other_tenant, "executor", name="globex runner")
    with serving() as api:
        api.route("/api/x", _echo)
        tenant.trusted_hosts = [f"127.0.0.1:{api.port}"]
        tenant.save()
        spec = http_spec({"base_url": f"{api.url}/api"})
        succeeded(execute(executor_key, spec))
        message = refused(execute(other_key, spec))
    assert "loopback" in message
    assert len(api.seen) == 1


def test_another_port_of_a_trusted_host_is_refused(
    executor_key: IssuedKey, settings: Any, network: Network
) -> None:
    with serving() as api, listening() as other:
        settings.AGENTFLOW_TRUSTED_HOSTS = [f"127.0.0.1:{api.port}"]
        message = refused(execute(executor_key, http_spec({"base_url": other.url})))
    assert f"port {other.port}" in message
    assert other.accepted == []


def test_a_redirect_to_another_port_of_a_trusted_name_is_refused(
    executor_key: IssuedKey, settings: Any
) -> None:
    """Issue 13: allowing `localhost` for one port let a redirect reach another."""
    with serving() as api, listening() as other:
        api.route(
            "/api/x", lambda seen: (307, {"Location": f"http://localhost:{other.port}/"}, b"")
        )
        settings.AGENTFLOW_TRUSTED_HOSTS = [f"localhost:{api.port}"]
        config = {"base_url": f"http://localhost:{api.port}/api", "allowed_hosts": ["localhost"]}
        message = refused(execute(executor_key, http_spec(config)))
    assert f"port {other.port}" in message
    assert other.accepted == []
    assert len(api.seen) == 1


def test_allowed_hosts_narrows_the_operators_trust_to_the_ports_it_names(
    executor_key: IssuedKey, settings: Any
) -> None:
    with serving() as api, listening() as other:
        api.route("/api/x", lambda seen: (302, {"Location": f"{other.url}/admin"}, b""))
        settings.AGENTFLOW_TRUSTED_HOSTS = ["127.0.0.0/8"]  # any port
        config = {"base_url": f"{api.url}/api", "allowed_hosts": [f"127.0.0.1:{api.port}"]}
        message = refused(execute(executor_key, http_spec(config)))
    assert "allowed_hosts" in message and f"port {other.port}" in message
    assert other.accepted == []


# --- headers -------------------------------------------------------------------------------------


def test_vendor_key_headers_never_follow_a_redirect_to_another_origin(
    executor_key: IssuedKey, settings: Any
) -> None:
    with serving() as api, serving() as elsewhere:
        api.route("/api/x", lambda seen: (302, {"Location": f"{elsewhere.url}/land"}, b""))
        elsewhere.route("/land", _echo)
        settings.AGENTFLOW_TRUSTED_HOSTS = ["127.0.0.1"]
        names = ["X-Goog-Api-Key", "Ocp-Apim-Subscription-Key", "X-Functions-Key", "X-Vendor-Sig"]
        headers = {name: "{{ metadata.key }}" for name in names} | {"Accept": "application/json"}
        spec = http_spec(
            {"base_url": f"{api.url}/api", "headers": {"X-Team": "blue"}}, headers=headers
        )
        succeeded(execute(executor_key, spec, {"metadata": {"key": "k-from-state"}}))
    sent = api.seen[0].headers
    assert all(sent[name.lower()] == "k-from-state" for name in names)
    assert sent["x-team"] == "blue"  # the source's headers are sent to its own origin
    landed = elsewhere.seen[0].headers
    assert [name for name in names if name.lower() in landed] == []
    assert "x-team" not in landed
    assert landed["accept"] == "application/json"


def test_a_sources_headers_are_sent_under_the_nodes_own(
    executor_key: IssuedKey, settings: Any
) -> None:
    with serving() as api:
        api.route("/api/x", _echo)
        settings.AGENTFLOW_TRUSTED_HOSTS = [f"127.0.0.1:{api.port}"]
        config = {"base_url": f"{api.url}/api", "headers": {"X-Team": "blue", "Accept": "text/csv"}}
        spec = http_spec(config, headers={"accept": "application/json"})
        body = succeeded(execute(executor_key, spec))
    sent = body["final_state"]["http_result"]["body"]["headers"]
    assert sent["x-team"] == "blue"
    assert sent["accept"] == "application/json"  # the node's header wins


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Authorization", "Bearer sk-proj-0123456789abcdefghij"),
        ("X-Goog-Api-Key", "AIzaSyD-1234567890abcdefghijklmnopqrstu"),
        ("Ocp-Apim-Subscription-Key", "3f9a8c1e7b2d4f6a9c0e1b3d5f7a9c2e"),
        ("X-Functions-Key", "q8Zp3LmN7vR2tY6wK1xB4cD9eF0gH"),
    ],
)
def test_a_literal_credential_in_a_nodes_headers_is_a_validation_error(
    executor_key: IssuedKey, name: str, value: str
) -> None:
    with listening() as api:
        spec = http_spec({"base_url": api.url}, headers={name: value})
        response = execute(executor_key, spec)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["type"] == "literal_secret"
    assert error["path"] == f"/nodes/0/metadata/headers/{name}"
    assert name in error["message"]
    assert value not in response.content.decode()
    assert api.accepted == []


def test_a_credential_in_a_sources_headers_is_a_validation_error(executor_key: IssuedKey) -> None:
    spec = http_spec(
        {
            "base_url": "https://api.example.com",
            "headers": {"X-Custom": "sk-ant-api03-abcdefghijklmnop"},
        }
    )
    response = execute(executor_key, spec)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["type"], error["path"]) == (
        "literal_secret",
        "/sources/0/config/headers/X-Custom",
    )


# --- provider SDKs go through the same door ------------------------------------------------------


def llm_spec(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    node_type = "image" if kind == "openai_image" else "llm"
    return {
        "name": "egress",
        "start_node": "call",
        "nodes": [
            {"id": "call", "type": node_type, "metadata": {"source": "p", "prompt": "the prompt"}}
        ],
        "edges": [],
        "sources": [{"id": "p", "kind": kind, "config": config}],
    }


PROVIDER_CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    # kind: (the fake server's fixture, the source's config, the key's variable)
    "openai": ("openai_server", {"model_name": "gpt-4o-mini", "max_retries": 0}, "OPENAI_API_KEY"),
    "openai_image": ("openai_server", {"model_name": "gpt-image-1"}, "OPENAI_API_KEY"),
    "anthropic": ("anthropic_server", {"model_name": "claude-test"}, "ANTHROPIC_API_KEY"),
    "google": ("gemini_server", {"model_name": "gemini-test"}, "GEMINI_API_KEY"),
}


def _gateway(server: Any) -> str:
    """The URL the operator's gateway setting points at: the fake server."""
    return str(server.base_url if isinstance(server, FakeOpenAIServer) else server.url)


@pytest.mark.parametrize("kind", sorted(PROVIDER_CASES))
def test_a_provider_gateway_answering_with_a_redirect_is_refused_and_not_followed(
    tenant: Any, executor_key: IssuedKey, monkeypatch: pytest.MonkeyPatch, request: Any, kind: str
) -> None:
    fixture, config, var = PROVIDER_CASES[kind]
    server: FakeOpenAIServer | FakeAnthropicServer | FakeGeminiServer = request.getfixturevalue(
        fixture
    )
    tenant.allowed_env = [var]
    tenant.save()
    monkeypatch.setenv(var, "sk-test-egress-0123456789")
    with (
        listening() as target,
        override_settings(AGENTFLOW_PROVIDER_BASE_URLS={kind: _gateway(server)}),
    ):
        server.script(times=5, status=307, headers={"Location": f"{target.url}/steal"}, body=b"")
        message = refused(execute(executor_key, llm_spec(kind, {**config, "api_key_env": var})))
    assert "redirect" in message and target.url in message
    assert target.accepted == []  # neither the prompt nor the key went along
    assert "sk-test-egress" not in message


def test_an_azure_endpoint_answering_with_a_redirect_is_refused_and_not_followed(
    tenant: Any,
    executor_key: IssuedKey,
    monkeypatch: pytest.MonkeyPatch,
    openai_server: FakeOpenAIServer,
) -> None:
    tenant.allowed_env = ["AZURE_KEY@azure_openai:127.0.0.1"]
    tenant.trusted_hosts = [openai_server.url.removeprefix("http://")]
    tenant.save()
    monkeypatch.setenv("AZURE_KEY", "azure-test-key-0123456789")
    config = {
        "deployment": "d",
        "endpoint": openai_server.url,
        "api_version": "2025-04-01-preview",
        "api_key_env": "AZURE_KEY",
        "max_retries": 0,
    }
    with listening() as target:
        openai_server.script(status=307, headers={"Location": f"{target.url}/steal"}, body=b"")
        message = refused(execute(executor_key, llm_spec("azure_openai", config)))
    assert "Azure OpenAI" in message and "redirect" in message
    assert target.accepted == []
    assert len(openai_server.requests) == 1


@pytest.mark.parametrize(
    "base_url", ["{listener}/v1", "http://169.254.169.254/v1", "http://[::ffff:127.0.0.1]:9/v1"]
)
def test_a_providers_own_base_url_on_an_untrusted_or_metadata_address_is_refused(
    executor_key: IssuedKey, settings: Any, network: Network, base_url: str
) -> None:
    settings.AGENTFLOW_TRUSTED_PROVIDER_HOSTS = ["169.254.169.254"]  # metadata stays refused
    with listening() as private:
        url = base_url.format(listener=private.url)
        config = {"model_name": "m", "max_retries": 0, "base_url": url}  # no key: none is read
        message = refused(execute(executor_key, llm_spec("openai", config)))
    if "169.254" not in base_url:  # the operator's setting is the fix, not allowed_hosts
        assert "AGENTFLOW_TRUSTED_PROVIDER_HOSTS" in message
    assert "allowed_hosts" not in message.replace("source's allowed_hosts say", "")
    assert private.accepted == []
    assert network.attempts == []


# --- who sets the trust: the operator, in settings and in the admin ----------------------------


def test_a_tenants_trusted_hosts_are_edited_in_the_admin_and_checked(tenant: Any, rf: Any) -> None:
    from django.contrib.admin.sites import site
    from django.contrib.auth.models import User
    from django.core.exceptions import ValidationError

    from tenants.models import Tenant

    request = rf.get("/admin/")
    request.user = User(is_superuser=True, is_staff=True)
    form = site._registry[Tenant].get_form(request, tenant)
    assert "trusted_hosts" in form.base_fields
    tenant.trusted_hosts = ["10.0.0.5:8000", "[fd12::/48]", "*.corp"]
    tenant.full_clean()
    tenant.trusted_hosts = ["http://10.0.0.5"]
    with pytest.raises(ValidationError, match="is a URL"):
        tenant.full_clean()


def test_a_bad_trusted_hosts_setting_stops_the_server_at_start() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "AGENTFLOW_TRUSTED_HOSTS": "10.0.0.5:http"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "(agentflow.E100) AGENTFLOW_TRUSTED_HOSTS='10.0.0.5:http'" in done.stderr
    assert "Traceback" not in done.stderr
