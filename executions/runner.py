"""Run a workflow for an execution row and record its trace as it happens.

The graph runs on the process's runtime loop (`runtime.loop`: one thread and event loop per
process, shared by every run, so database pools and SDK clients outlive a run); node events
come back over a queue and this (the caller's) thread writes them, so every row is written
through the caller's database connection and no ORM call happens inside the event loop. Between
events this thread also beats the heart and checks for a cancel request, which stops a node in
flight within half a second; and before each node starts the run asks it whether a cancel came
(`GoOn`), so no node starts after a cancel was accepted. What else a run must do through the ORM
(its daily budget, without Redis) it asks this thread to do, through a `CallerThread`.
"""

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections

from runtime import loop
from runtime.compiler import CompiledWorkflow
from runtime.context import RunContext, RunStopped
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
Around = Callable[[Awaitable[RunOutcome]], Awaitable[RunOutcome]]
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
class _Call:
    work: Callable[[], Any]
    future: "asyncio.Future[Any]"
    loop: asyncio.AbstractEventLoop

    def run(self) -> None:
        try:
            result, error = self.work(), None
        except Exception as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(_resolve, self.future, result, error)


@dataclass(frozen=True)
class GoOn:
    """A run about to start a node asks whether it may (`RunContext.go_on`); the thread that
    reads its cancel requests answers."""

    future: "asyncio.Future[None]"
    loop: asyncio.AbstractEventLoop
    execution_id: str = ""

    def answer(self, go: bool) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            stopped = None if go else RunStopped("The run was cancelled.")
            self.loop.call_soon_threadsafe(_resolve, self.future, None, stopped)


def go_on_asking(
    events: "queue.Queue[object]", execution_id: str = ""
) -> Callable[[], Awaitable[None]]:
    """A `RunContext.go_on` that puts a `GoOn` on `events` and waits for its answer."""

    async def go_on() -> None:
        running = asyncio.get_running_loop()
        future: asyncio.Future[None] = running.create_future()
        events.put(GoOn(future, running, execution_id))
        await future

    return go_on


def _resolve(future: "asyncio.Future[Any]", result: Any, error: Exception | None) -> None:
    if future.done():  # its waiter was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _with_connection[T](work: Callable[[], T]) -> T:
    close_old_connections()
    try:
        return work()
    finally:
        close_old_connections()


class CallerThread:
    """Blocking ORM work a run asks for, done by the thread waiting for it in `run_observed`,
    through the database connection that thread holds anyway (each statement commits on its
    own: no transaction stays open across the run's awaits).

    Not a worker thread (`asyncio.to_thread`): that needs a second connection, and a web
    process whose pool is held by requests waiting for their runs has none to give (seen: 12
    runs at once on the default pool of 10 failed after its 30 s timeout). Outside
    `run_observed` the work goes to a worker thread after all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: queue.Queue[object] | None = None

    async def call[T](self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            events = self._events
            if events is not None:
                events.put(_Call(work, future, loop))
        if events is None:
            return await asyncio.to_thread(_with_connection, work)
        return await future

    @contextlib.contextmanager
    def serving(self, events: "queue.Queue[object]") -> Iterator[None]:
        """Take calls from `events` while the caller drains it; answer any left at the end."""
        with self._lock:
            self._events = events
        try:
            yield
        finally:
            with self._lock:
                self._events = None
            while not events.empty():
                event = events.get_nowait()
                if isinstance(event, _Call):
                    event.run()


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
    on_events: Callable[[list[Event]], None],
    on_tick: Callable[[], bool] | None = None,
    checkpointer: Checkpointer | None = None,
    thread_id: str | None = None,
    caller: CallerThread | None = None,
    around: Around | None = None,
) -> RunOutcome:
    """Run the workflow on the runtime loop, calling `on_events` here with its events, in order
    and in batches: what arrived within SLICE seconds of the first (a fast chain is written in a
    few statements, not two for every node).

    `on_tick` runs here every TICK seconds, and before each node starts; when it returns True
    the run is cancelled (no other node starts) and ends with status `cancelled`, keeping its
    partial state. What the run asks of `caller` is done here at once, between the batches.
    `around` wraps the run on the loop (a profile of it).
    """
    events: queue.Queue[object] = queue.Queue()
    ctx.observer = _QueueObserver(events)
    if on_tick is not None:
        ctx.go_on = go_on_asking(events)
    handle = _Handle()

    async def main() -> RunOutcome:
        handle.loop, handle.task = asyncio.get_running_loop(), asyncio.current_task()
        return await (around(run()) if around else run())

    async def run() -> RunOutcome:
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

    with caller.serving(events) if caller else contextlib.nullcontext():  # before the run asks
        # Cancelled through its task, not the future: the task's own outcome (status
        # `cancelled`, with the partial state) is what the caller records.
        future = loop.submit(main())
        future.add_done_callback(lambda _: events.put(_DONE))
        try:
            _pump(events, on_events, on_tick or (lambda: False), handle)
        except BaseException:
            # Its record cannot be written (the database went away): the run stops here rather
            # than call its remaining nodes with nothing recorded.
            handle.cancel()
            raise
    try:
        return future.result()
    except concurrent.futures.CancelledError:  # cancelled before run_workflow began
        raise asyncio.CancelledError from None


SLICE = 0.02
"""Seconds a batch of events may wait for more before it is written."""


def _pump(
    events: "queue.Queue[object]",
    on_events: Callable[[list[Event]], None],
    on_tick: Callable[[], bool],
    handle: _Handle,
) -> None:
    """Until the run is done: calls at once, events in batches, a tick every TICK seconds."""
    pending: list[Event] = []
    next_tick = time.monotonic() + TICK
    write_by: float | None = None
    while True:
        wake = next_tick if write_by is None else min(next_tick, write_by)
        try:
            item = events.get(timeout=max(0.0, wake - time.monotonic()))
        except queue.Empty:
            item = None
        if item is _DONE:
            break
        if isinstance(item, _Call):
            item.run()
        elif isinstance(item, GoOn):
            stop = on_tick()
            item.answer(not stop)
            if stop:
                handle.cancel()
        elif item is not None:
            pending.append(item)  # type: ignore[arg-type]
            if write_by is None:
                write_by = time.monotonic() + SLICE
        now = time.monotonic()
        if pending and write_by is not None and now >= write_by:
            on_events(pending)
            pending, write_by = [], None
        if now >= next_tick:
            if pending:
                on_events(pending)
                pending, write_by = [], None
            if on_tick():
                handle.cancel()
            next_tick = time.monotonic() + TICK
    if pending:
        on_events(pending)
