"""How a run reports what happens: node events through an observer the caller supplies.

`runtime/` never writes rows itself; the `executions` app implements `RunObserver` and turns
each event into a trace row (and, later, a server-sent event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class NodeStarted:
    node_id: str
    node_type: str
    attempt: int
    started_at: datetime


@dataclass(frozen=True, slots=True)
class NodeFinished:
    node_id: str
    node_type: str
    attempt: int
    started_at: datetime
    duration: float
    """Seconds the attempt took."""
    status: str
    """`succeeded` or `failed`."""
    output: Any = None
    tokens: int = 0
    cost: float = 0.0
    error: dict[str, Any] | None = None
    """`{"code", "message"}` when the attempt failed."""
    details: dict[str, Any] = field(default_factory=dict)
    """Node-specific facts for the trace: the model that answered, the route taken."""


class RunObserver(Protocol):
    async def node_started(self, event: NodeStarted) -> None: ...

    async def node_finished(self, event: NodeFinished) -> None: ...

    async def node_token(self, node_id: str, delta: str) -> None: ...


class NullObserver:
    async def node_started(self, event: NodeStarted) -> None:
        return None

    async def node_finished(self, event: NodeFinished) -> None:
        return None

    async def node_token(self, node_id: str, delta: str) -> None:
        return None


@dataclass
class RecordingObserver:
    """Keeps every event in memory, in order (for the CLI and tests)."""

    events: list[NodeStarted | NodeFinished] = field(default_factory=list)
    tokens: list[tuple[str, str]] = field(default_factory=list)

    async def node_started(self, event: NodeStarted) -> None:
        self.events.append(event)

    async def node_finished(self, event: NodeFinished) -> None:
        self.events.append(event)

    async def node_token(self, node_id: str, delta: str) -> None:
        self.tokens.append((node_id, delta))

    def finished(self) -> list[NodeFinished]:
        return [e for e in self.events if isinstance(e, NodeFinished)]
