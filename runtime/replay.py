"""Provider calls recorded by one run and answered from the record in a replay of it.

Every chat call a node makes is keyed by the digest of its request (`request_digest`): the
source's kind and settings without its credentials' names, the model, the messages and the
sampling. A run records each call's answer (`Recordings.record`); a replay looks each request
up first (`Recordings.lookup`) and calls the provider only when the original run never made
the same request, so a changed prompt costs one call and the rest cost nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypedDict

from runtime.providers.base import ChatRequest, ChatResult, Usage
from runtime.spec import SourceSpec


class Recorded(TypedDict):
    node_id: str
    digest: str
    kind: str
    """`chat`: the only call replayed so far."""
    response: dict[str, Any]


Sink = Callable[[Recorded], Awaitable[None]]
"""Keeps one recorded call (the executions app writes it as a row)."""


class Recordings(Protocol):
    def lookup(self, node_id: str, digest: str) -> dict[str, Any] | None:
        """The recorded response to this request of this node, or None: call the provider."""
        ...

    async def record(self, node_id: str, digest: str, kind: str, response: dict[str, Any]) -> None:
        """Keep a call's response; never raises (a lost record must not fail the run)."""
        ...


class NoRecordings:
    """Nothing is replayed and nothing is kept (the CLI, tests)."""

    def lookup(self, node_id: str, digest: str) -> dict[str, Any] | None:
        return None

    async def record(self, node_id: str, digest: str, kind: str, response: dict[str, Any]) -> None:
        return None


@dataclass
class Replay:
    """What a run answers from an earlier run's record, and where it keeps its own calls.

    A digest recorded several times (a loop) is answered in the order it was recorded. Nodes
    in `pinned` (those that finished before a replay's `from_node`) are answered with their
    own recorded calls in order, whatever they ask; when `fresh_others`, every other node
    calls its provider.
    """

    recorded: Iterable[Recorded] = ()
    sink: Sink | None = None
    pinned: frozenset[str] = frozenset()
    fresh_others: bool = False
    _by_digest: dict[str, deque[dict[str, Any]]] = field(default_factory=dict, repr=False)
    _by_node: dict[str, deque[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for each in self.recorded:
            self._by_digest.setdefault(each["digest"], deque()).append(each["response"])
            if each["node_id"] in self.pinned:
                self._by_node.setdefault(each["node_id"], deque()).append(each["response"])
        self.recorded = ()

    def lookup(self, node_id: str, digest: str) -> dict[str, Any] | None:
        if node_id in self.pinned:
            return _next(self._by_node.get(node_id))
        if self.fresh_others:
            return None
        return _next(self._by_digest.get(digest))

    async def record(self, node_id: str, digest: str, kind: str, response: dict[str, Any]) -> None:
        if self.sink is not None:
            await self.sink(Recorded(node_id=node_id, digest=digest, kind=kind, response=response))


def _next(answers: deque[dict[str, Any]] | None) -> dict[str, Any] | None:
    return answers.popleft() if answers else None


def _source_settings(source: SourceSpec) -> dict[str, Any]:
    """The source's settings as they shape an answer: no credential names (`*_env`)."""
    return {k: v for k, v in sorted(source.config.items()) if not k.endswith("_env")}


def request_digest(call: str, source: SourceSpec, request: ChatRequest) -> str:
    """sha256 of the canonical request (`stream` left out: it changes how, not what)."""
    asked = asdict(request)
    asked.pop("stream", None)
    canonical = {"call": call, "kind": source.kind, "source": _source_settings(source), **asked}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def chat_payload(answer: ChatResult, tokens: int, cost: float) -> dict[str, Any]:
    usage = answer.usage
    return {
        "text": answer.text,
        "model": answer.model,
        "finish_reason": answer.finish_reason,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        },
        "tokens": tokens,
        "cost": cost,
    }


def chat_answer(payload: Mapping[str, Any]) -> ChatResult:
    usage = payload.get("usage") or {}
    return ChatResult(
        text=str(payload.get("text", "")),
        model=str(payload.get("model", "")),
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        finish_reason=payload.get("finish_reason"),
    )


def replayed_details(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Trace details of a replayed call: what it used when it was made, for 0 now."""
    return {
        "replayed": True,
        "recorded_tokens": int(payload.get("tokens", 0)),
        "recorded_cost": float(payload.get("cost", 0.0)),
    }
