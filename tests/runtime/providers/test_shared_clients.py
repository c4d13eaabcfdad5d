"""On the runtime loop, runs share provider adapters (and their SDK clients' connections);
anywhere else a run closes what it opened. Different tenants, configs or keys never share."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from openai import AsyncOpenAI

from runtime import loop
from runtime.compiler import CompiledWorkflow, compile_workflow
from runtime.context import RunContext
from runtime.providers import OpenAIProvider
from runtime.providers.shared import SharedAdapters, adapter_key, shared_adapters
from runtime.runner import run_workflow
from runtime.source_configs import OpenAIConfig
from runtime.validation import validate_spec

LOCAL = frozenset({"127.0.0.1"})
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1_790_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class _Completions(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a reused client sends on the same connection

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: CountingServer = self.server  # type: ignore[assignment]
        server.keys.append((self.client_address[1], self.headers.get("Authorization", "")))
        body = json.dumps(COMPLETION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CountingServer(ThreadingHTTPServer):
    """An OpenAI chat endpoint on 127.0.0.1 that counts the TCP connections it accepts."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Completions)
        self.accepted = 0
        self.keys: list[tuple[int, str]] = []
        """(client port, Authorization header) of every request."""

    def get_request(self) -> Any:
        accepted = super().get_request()
        self.accepted += 1
        return accepted

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def server() -> Iterator[CountingServer]:
    httpd = CountingServer()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class RecordingProvider(OpenAIProvider):
    """The openai adapter, keeping every SDK client it builds."""

    built: list[AsyncOpenAI] = []

    def _build(self, key: str) -> AsyncOpenAI:
        client = super()._build(key)
        RecordingProvider.built.append(client)
        return client


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    RecordingProvider.built = []
    yield
    loop.run(_close_shared())  # nothing this test leased stays open for the next


async def _close_shared() -> None:
    await shared_adapters().aclose()


async def _shared_count() -> int:
    return len(shared_adapters())


def workflow(server: CountingServer) -> CompiledWorkflow:
    source = {
        "id": "gpt",
        "kind": "openai",
        "config": {"model_name": "gpt-4o-mini", "api_key_env": "KEY", "base_url": server.base_url},
    }
    raw = {
        "name": "t",
        "start_node": "w",
        "nodes": [{"id": "w", "type": "llm", "metadata": {"source": "gpt", "prompt": "hi"}}],
        "edges": [],
        "sources": [source],
    }
    validated = validate_spec(raw)
    assert validated.valid, validated.to_dict()["errors"]
    return compile_workflow(validated)


def context(tenant: str = "acme", key: str = "sk-acme-0123456789") -> RunContext:
    return RunContext(
        env={"KEY": key}.get,
        tenant=tenant,
        trusted_provider_hosts=LOCAL,
        providers={"openai": RecordingProvider},
    )


def test_two_runs_on_the_runtime_loop_use_one_client_and_one_connection(
    server: CountingServer,
) -> None:
    compiled = workflow(server)
    shared_before = loop.run(_shared_count())  # other tests of this process may have leased
    first = loop.run(run_workflow(compiled, {}, context()))
    second = loop.run(run_workflow(compiled, {}, context()))
    assert (first.status, second.status) == ("succeeded", "succeeded"), second.error
    assert len(RecordingProvider.built) == 1
    assert not RecordingProvider.built[0].is_closed()  # kept open for the next run
    assert server.accepted == 1
    assert loop.run(_shared_count()) == shared_before + 1


def test_tenants_and_keys_never_share_a_client(server: CountingServer) -> None:
    compiled = workflow(server)
    runs = [context("acme"), context("globex"), context("acme", key="sk-acme-rotated-01")]
    outcomes = [loop.run(run_workflow(compiled, {}, ctx)) for ctx in runs]
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    assert len(RecordingProvider.built) == 3
    assert server.accepted == 3
    keys_by_connection: dict[int, set[str]] = {}
    for port, key in server.keys:
        keys_by_connection.setdefault(port, set()).add(key)
    assert all(len(keys) == 1 for keys in keys_by_connection.values())
    assert {next(iter(k)) for k in keys_by_connection.values()} == {
        "Bearer sk-acme-0123456789",
        "Bearer sk-acme-rotated-01",
    }


def test_off_the_runtime_loop_a_run_closes_its_clients(server: CountingServer) -> None:
    compiled = workflow(server)
    outcome = asyncio.run(run_workflow(compiled, {}, context()))
    assert outcome.status == "succeeded", outcome.error
    assert len(RecordingProvider.built) == 1
    assert RecordingProvider.built[0].is_closed()


def test_a_key_holds_a_digest_of_the_credential_never_the_value() -> None:
    config = OpenAIConfig.model_validate({"model_name": "m", "api_key_env": "KEY"})
    key, env = adapter_key("acme", "openai", OpenAIProvider, config, {"KEY": "sk-secret"}.get)
    same, _ = adapter_key("acme", "openai", OpenAIProvider, config, {"KEY": "sk-secret"}.get)
    other, _ = adapter_key("acme", "openai", OpenAIProvider, config, {"KEY": "sk-other"}.get)
    assert key == same and key != other
    assert "sk-secret" not in repr(key)
    assert env("KEY") == "sk-secret" and env("OTHER") is None  # the adapter's own snapshot


class FakeAdapter:
    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


def key(name: str) -> Any:
    return ("t", "openai", FakeAdapter, name, "digest")


def test_an_adapter_in_use_is_never_closed_and_idle_ones_beyond_the_cap_are() -> None:
    now = [0.0]
    shared = SharedAdapters(max_idle=1, idle_seconds=100, clock=lambda: now[0])
    a, b, c = (shared.acquire(key(n), FakeAdapter) for n in "abc")

    async def release(name: str) -> None:
        shared.release([key(name)])
        await shared.trim()

    async def scenario() -> None:
        await release("a")  # a idle, b and c in use
        assert not a.closed
        await release("b")  # two idle, one allowed: the older (a) goes
        assert (a.closed, b.closed, c.closed) == (True, False, False)
        now[0] = 500.0
        await release("c")  # b has been idle 500 s: it goes; c just went idle
        assert (b.closed, c.closed) == (True, False)
        await shared.aclose()
        assert c.closed

    asyncio.run(scenario())
    assert len(shared) == 0
