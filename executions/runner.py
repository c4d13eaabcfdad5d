"""Run a workflow for an execution row and record its trace as it happens.

The graph runs on its own thread with its own event loop; node events come back over a queue
and this (the caller's) thread writes them, so every row is written through the caller's
database connection and no ORM call happens inside the event loop.
"""

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.compiler import CompiledWorkflow
from runtime.context import RunContext
from runtime.events import NodeFinished, NodeStarted
from runtime.runner import RunOutcome, run_workflow


@dataclass(frozen=True)
class TokenEvent:
    node_id: str
    delta: str


Event = NodeStarted | NodeFinished | TokenEvent
_DONE = object()


class _QueueObserver:
    def __init__(self, events: "queue.Queue[object]") -> None:
        self.events = events

    async def node_started(self, event: NodeStarted) -> None:
        self.events.put(event)

    async def node_finished(self, event: NodeFinished) -> None:
        self.events.put(event)

    async def node_token(self, node_id: str, delta: str) -> None:
        self.events.put(TokenEvent(node_id, delta))


def run_in_thread(
    workflow: CompiledWorkflow,
    values: dict[str, Any],
    ctx: RunContext,
    *,
    timeout_seconds: float | None,
    on_event: Callable[[Event], None],
) -> RunOutcome:
    """Run the workflow on a worker thread, calling `on_event` here for each event, in order."""
    events: queue.Queue[object] = queue.Queue()
    ctx.observer = _QueueObserver(events)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["outcome"] = asyncio.run(
                run_workflow(workflow, values, ctx, timeout_seconds=timeout_seconds)
            )
        except BaseException as exc:  # handed to the caller's thread below
            result["error"] = exc
        finally:
            events.put(_DONE)

    thread = threading.Thread(target=target, name="agentflow-run", daemon=True)
    thread.start()
    while (event := events.get()) is not _DONE:
        on_event(event)  # type: ignore[arg-type]
    thread.join()
    if "error" in result:
        raise result["error"]
    outcome: RunOutcome = result["outcome"]
    return outcome
