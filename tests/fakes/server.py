"""A scriptable HTTP server on 127.0.0.1 that records what it is sent; protocols plug in a handler.

Each test scripts a queue of behaviours (`server.script(status=429, headers={"Retry-After": "1"})`);
a request takes the next one, or the default (a normal answer) when the queue is empty.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one request."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. Retry-After)."""
    body: bytes | None = None
    """Raw response bytes instead of the protocol's answer (e.g. b"not json")."""
    json: Any = None
    """A JSON response body instead of the protocol's answer."""
    text: str | None = None
    """The answer's text; default: an echo of the prompt."""
    message: str | None = None
    """The error message in the protocol's error body, for status >= 400."""
    delay: float = 0.0
    """Seconds to wait before answering (cut short when the server stops)."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    chunks: Iterable[bytes]
    """The body, written and flushed chunk by chunk (SSE streams send several)."""


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    body = json.dumps(payload).encode()
    base = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return Reply(status, {**base, **(headers or {})}, [body])


def sse_reply(events: Iterable[bytes], headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(200, {"Content-Type": "text/event-stream", **(headers or {})}, events)


Handler = Callable[[RecordedRequest, Behaviour], Reply]


def scripted_reply(request: RecordedRequest, behaviour: Behaviour, protocol: Handler) -> Reply:
    """Raw bytes or JSON when scripted, else the protocol's answer (or its error body)."""
    if behaviour.body is not None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(behaviour.body))}
        return Reply(behaviour.status, {**headers, **behaviour.headers}, [behaviour.body])
    if behaviour.json is not None:
        return json_reply(behaviour.status, behaviour.json, behaviour.headers)
    return protocol(request, behaviour)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # a worker resuming its runs connects for all of them at once;
    # socketserver's default backlog of 5 refused some, which a real provider never does


class FakeServer:
    """One fake provider: start it, point an SDK's base_url at `url`, script, then inspect."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.answered: list[RecordedRequest] = []
        """Requests whose answer reached a client still there (not one killed mid-call)."""
        self._httpd = _Server(("127.0.0.1", 0), _request_handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def last_request(self) -> RecordedRequest:
        assert self.requests, "the fake server has received no request"
        return self.requests[-1]

    def script(self, *, times: int = 1, **behaviour: Any) -> Behaviour:
        """Queue a behaviour for the next `times` requests (fields as in `Behaviour`)."""
        scripted = Behaviour(**behaviour)
        with self._lock:
            self._queue.extend([scripted] * times)
        return scripted

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.01)

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else Behaviour()

    def _handle(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            self.requests.append(request)
        behaviour = self._next_behaviour()
        if behaviour.delay and self._stopping.wait(behaviour.delay):
            return None
        return scripted_reply(request, behaviour, self._handler)


def _request_handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def _answer(self) -> None:
            request = self._recorded()
            reply = server._handle(request)
            if reply is None or self._peer_gone():
                return
            # The client may have given up (a timeout test): then there is no one to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._write(reply)
                with server._lock:
                    server.answered.append(request)

        def _peer_gone(self) -> bool:
            readable, _, _ = select.select([self.connection], [], [], 0)
            try:
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def _recorded(self) -> RecordedRequest:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            return RecordedRequest(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )

        def _write(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            for chunk in reply.chunks:
                self.wfile.write(chunk)
                self.wfile.flush()

    return _Handler
