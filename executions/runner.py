"""Run a workflow for an execution row and record its trace as it happens.

The graph runs on the process's runtime loop (`runtime.loop`: one thread and event loop per
process, shared by every run, so database pools and SDK clients outlive a run); node events
come back over a queue and this (the caller's) thread writes them, so every row is written
through the caller's database connection and no ORM call happens inside the event loop. Between
events this thread also beats the heart and checks for a cancel request, which stops the run
within half a second.
"""

import asyncio
import concurrent.futures
import queue
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from runtime import loop
from runtime.compiler import CompiledWorkflow
from runtime.context import RunContext
from runtime.events import NodeFinished, NodeStarted
from runtime.runner import RunOutcome, run_workflow

TICK = 0.25
"""Seconds between heartbeat/cancel checks while no event arrives."""


@dataclass(frozen=True)
class TokenEvent:
    node_id: str
    delta: str


Event = NodeStarted | NodeFinished | TokenEvent
Checkpointer = Callable[[], AbstractAsyncContextManager[Any]]
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


@dataclass
class _Handle:
    loop: asyncio.AbstractEventLoop | None = None
    task: "asyncio.Task[Any] | None" = None

    def cancel(self) -> None:
        if self.loop is not None and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)


def run_observed(
    workflow: CompiledWorkflow,
    values: dict[str, Any],
    ctx: RunContext,
    *,
    timeout_seconds: float | None,
    on_event: Callable[[Event], None],
    on_tick: Callable[[], bool] = lambda: False,
    checkpointer: Checkpointer | None = None,
    thread_id: str | None = None,
) -> RunOutcome:
    """Run the workflow on the runtime loop, calling `on_event` here for each event, in order.

    `on_tick` runs here every TICK seconds without events (and between events); when it returns
    True the run is cancelled and ends with status `cancelled`, keeping its partial state.
    """
    events: queue.Queue[object] = queue.Queue()
    ctx.observer = _QueueObserver(events)
    handle = _Handle()

    async def main() -> RunOutcome:
        handle.loop, handle.task = asyncio.get_running_loop(), asyncio.current_task()
        if checkpointer is None:
            return await run_workflow(workflow, values, ctx, timeout_seconds=timeout_seconds)
        async with checkpointer() as saver:
            return await run_workflow(
                workflow,
                values,
                ctx,
                timeout_seconds=timeout_seconds,
                checkpointer=saver,
                thread_id=thread_id,
            )

    # Cancelled through its task, not the future: the task's own outcome (status `cancelled`,
    # with the partial state) is what the caller records.
    future = loop.submit(main())
    future.add_done_callback(lambda _: events.put(_DONE))
    for event in _drain(events):
        if event is None:
            if on_tick():
                handle.cancel()
            continue
        on_event(event)
    try:
        return future.result()
    except concurrent.futures.CancelledError:  # cancelled before run_workflow began
        raise asyncio.CancelledError from None


def _drain(events: "queue.Queue[object]") -> Iterator[Event | None]:
    """Each event in order, with a None at least every TICK seconds, until the run is done."""
    next_tick = time.monotonic() + TICK
    while True:
        try:
            event = events.get(timeout=max(0.0, next_tick - time.monotonic()))
        except queue.Empty:
            event = None
        if event is _DONE:
            return
        if event is not None:
            yield event  # type: ignore[misc]
        if time.monotonic() >= next_tick:
            next_tick = time.monotonic() + TICK
            yield None
