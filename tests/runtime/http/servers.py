"""Small HTTP servers on 127.0.0.1 for the http source's tests, one thread each."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    port: int
    routes: dict[str, Callable[[Seen], Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, reply: Callable[[Seen], Reply]) -> None:
        self.routes[path] = reply


def json_reply(status: int, body: Any, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    server_state: Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(
            self.command,
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            self.rfile.read(length),
        )
        self.server_state.seen.append(seen)
        reply = self.server_state.routes.get(self.path.split("?")[0])
        status, headers, body = reply(seen) if reply else json_reply(404, {"error": "no route"})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that stops reading (the size cap) is expected here


@contextmanager
def serving() -> Iterator[Server]:
    state = Server(port=0)
    handler = type("Handler", (_Handler,), {"server_state": state})
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Listener:
    """A bare TCP listener that counts the connections it accepts (and says nothing)."""

    host: str
    port: int
    accepted: list[tuple[str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@contextmanager
def listening(host: str = "127.0.0.1") -> Iterator[Listener]:
    """A `Listener` on `host` (loopback) and a free port, for as long as the block runs; read
    `accepted` after the block, when the backlog has been drained too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(16)
    sock.settimeout(0.05)
    state = Listener(host, sock.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            state.accepted.append(peer[:2])
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=5)
        _drain(sock, state)  # a connection still in the backlog counts too
        sock.close()


def _drain(sock: socket.socket, state: Listener) -> None:
    sock.setblocking(False)
    while True:
        try:
            conn, peer = sock.accept()
        except OSError:
            return
        state.accepted.append(peer[:2])
        conn.close()
