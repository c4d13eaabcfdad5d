"""A fake OpenAI server that holds chosen calls until the test lets them answer.

Calls are known by (run marker, node), read from prompts written "step <i> of <marker>" (the
chains of the durability and cancel tests: node n<i>'s prompt is `step <i> of {{ user_input }}`).
A held call is recorded when it arrives and answered (normally) once released; a released call
asked again is answered at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import Any

from tests.fakes.providers import FakeOpenAIServer
from tests.fakes.server import RecordedRequest, Reply

Key = tuple[str, str]


def call_key(request: RecordedRequest) -> Key:
    """(run marker, node) of a chat completion; ("", path) for anything else."""
    body: Any = request.json or {}
    messages = body.get("messages") if isinstance(body, dict) else None
    if not messages:
        return "", request.path
    step, _, marker = str(messages[-1]["content"]).removeprefix("step ").partition(" of ")
    return marker, f"n{step}"


class HoldingOpenAI(FakeOpenAIServer):
    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[Key, threading.Event] = {}
        self.released: dict[Key, threading.Event] = {}

    def hold(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.arrived[key] = threading.Event()
            self.released[key] = threading.Event()

    def wait_arrived(self, keys: Iterable[Key], timeout: float) -> None:
        for key in keys:
            assert self.arrived[key].wait(timeout), f"{key} was never called"

    def release(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.released[key].set()

    def calls(self) -> Counter[Key]:
        """Calls received per (run marker, node)."""
        with self._lock:
            return Counter(call_key(request) for request in self.requests)

    def _handle(self, request: RecordedRequest) -> Reply | None:
        key = call_key(request)
        if key in self.released:
            self.arrived[key].set()
            while not self.released[key].wait(0.05):
                if self._stopping.is_set():
                    return None
        return super()._handle(request)
