"""A fake OpenAI-compatible chat provider on loopback that holds hundreds of calls at once.

One asyncio server (`asyncio.start_server`, a minimal HTTP/1.1 keep-alive parser) on its own
thread. Every chat completion is answered after `delay` seconds with an echo of the prompt and
recorded with the run and node it came from: prompts carry a marker `[run=<id> node=<id>]`
(see `marker_prompt`). It also keeps the most calls it held at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

MARKER = re.compile(r"\[run=(?P<run>[^\s\]]+) node=(?P<node>[^\s\]]+)\]")
PROMPT_TOKENS, COMPLETION_TOKENS = 11, 7


def marker_prompt(node_id: str, run_key: str = "{{ user_input }}") -> str:
    """The prompt of an llm node that tells the fake which run (its `user_input`) and node."""
    return f"[run={run_key} node={node_id}] say something"


@dataclass
class Call:
    run: str
    node: str
    started: float
    """time.time() when the request arrived."""
    answered: float | None = None
    """time.time() when the answer was written to a client still there; None: never answered."""


class FakeLLM:
    """Start it, point AGENTFLOW_PROVIDER_BASE_URLS' `openai` at `base_url`, then read `calls`."""

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self.calls: list[Call] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._serve, name="fake-llm", daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake LLM server did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
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

    def reset(self) -> None:
        """Forget the calls and the in-flight maximum (between scenarios)."""
        with self._lock:
            self.calls = []
            self.max_in_flight = self.in_flight

    def snapshot(self) -> tuple[list[Call], int]:
        with self._lock:
            return list(self.calls), self.max_in_flight

    def counts(self) -> dict[tuple[str, str], int]:
        """Calls per (run, node)."""
        found: dict[tuple[str, str], int] = {}
        for call in self.snapshot()[0]:
            found[call.run, call.node] = found.get((call.run, call.node), 0) + 1
        return found

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=2048)
        )
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                status, payload = await self._answer(method, path, body, writer)
                data = json.dumps(payload).encode()
                head = (
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n"
                    "Connection: keep-alive\r\n\r\n"
                )
                writer.write(head.encode() + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        writer.close()

    async def _answer(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter
    ) -> tuple[int, Any]:
        if not (method == "POST" and path.endswith("/chat/completions")):
            return 404, {"error": {"message": f"no route for {method} {path}"}}
        request = json.loads(body or b"{}")
        prompt = _last_user_text(request.get("messages", []))
        found = MARKER.search(prompt)
        call = Call(found["run"] if found else "", found["node"] if found else "", time.time())
        with self._lock:
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        if writer.is_closing():
            return 499, {}
        call.answered = time.time()
        return 200, _completion(request.get("model") or "fake-model", f"echo: {prompt}")


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed its keep-alive connection
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    return method, path, headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")
    return b"".join(parts)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }
