"""The production command serves with TCP_NODELAY on (agentflow_site/serving.py).

uvicorn with `--workers N` binds its socket itself, with proto 0, and asyncio then leaves
Nagle's algorithm on for every connection: each small response waited ~40 ms for the client's
delayed ACK. The protocol class `--http` names sets the option on every accepted connection.
"""

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.server import ServerState

from agentflow_site.serving import HTTPProtocol
from tests.stack import ROOT, free_port, wait_for

PRODUCTION_FLAGS = ("--http", "agentflow_site.serving:HTTPProtocol", "--no-access-log")


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def _serve_once(protocol: type[asyncio.Protocol]) -> tuple[bool, bytes]:
    """Serve one request with `protocol` on a socket bound the way uvicorn's `--workers` binds
    it; return whether the accepted connection has TCP_NODELAY, and the answer."""
    config = Config(app=_hello, http=protocol, lifespan="off", log_level="warning")
    config.load()
    state = ServerState()
    listener = socket.socket(family=socket.AF_INET)  # proto 0, as Config.bind_socket makes it
    listener.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    protocol_class: Any = config.http_protocol_class
    factory = functools.partial(protocol_class, config=config, server_state=state, app_state={})
    server = await loop.create_server(factory, sock=listener)
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: still open after
        answer = await asyncio.wait_for(reader.readuntil(b"hello"), 10)
        (served,) = state.connections
        sock = served.transport.get_extra_info("socket")
        nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
    finally:
        server.close()
    return nodelay, answer


def test_asyncio_leaves_nagle_on_for_a_socket_bound_as_workers_bind_it() -> None:
    """Why the protocol class exists. Should a Python fix this, the class is merely redundant."""
    nodelay, answer = asyncio.run(_serve_once(AutoHTTPProtocol))
    assert answer.startswith(b"HTTP/1.1 200")
    assert not nodelay


def test_the_production_protocol_sets_tcp_nodelay_on_each_connection() -> None:
    nodelay, answer = asyncio.run(_serve_once(HTTPProtocol))
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello")
    assert nodelay


def test_uvicorn_resolves_the_flag_to_the_class() -> None:
    config = Config(app=_hello, http=PRODUCTION_FLAGS[1])
    config.load()
    assert config.http_protocol_class is HTTPProtocol


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    """AgentFlow under `uvicorn --workers 2` with the production flags."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "agentflow_site.asgi:application"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2", *PRODUCTION_FLAGS]
    with (tmp_path / "web.log").open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 60, "uvicorn --workers 2")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/health/live", timeout=1).status_code == 200
    except httpx2.HTTPError:
        return False


def test_the_production_command_serves_with_two_workers(two_workers: str) -> None:
    with httpx2.Client(base_url=two_workers, timeout=10) as client:  # one keep-alive connection
        answers = [client.get("/health/live") for _ in range(20)]
    assert [a.status_code for a in answers] == [200] * 20
    assert all(a.json() == {"status": "ok"} for a in answers)


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_the_launcher_runs_processes_on_their_own_sockets_refuses_a_taken_port_and_stops(
    tmp_path: Path,
) -> None:
    """`python -m agentflow_site.serving --processes N`: N servers, each on its own
    SO_REUSEPORT socket; a second launcher on the same port is refused; SIGTERM stops all."""
    port = free_port()
    command = [sys.executable, "-m", "agentflow_site.serving", "--port", str(port)]
    with (tmp_path / "web.log").open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--processes", "2"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 60, "the launcher's servers")
        servers = _children(proc.pid)
        assert len(servers) == 2
        for server in servers:  # each holds a listening socket of its own
            inodes = {os.readlink(fd) for fd in Path(f"/proc/{server}/fd").iterdir()}
            assert any(name.startswith("socket:") for name in inodes)
        second = subprocess.run(
            [*command, "--processes", "1"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert f"Port {port} on 127.0.0.1 is taken" in second.stderr
        wait_for(lambda: _answers(url), 30, "the first launcher, untouched")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0
    assert all(not Path(f"/proc/{server}").exists() for server in servers)
