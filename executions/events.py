"""Server-sent events for one execution, read from the ExecutionEvent rows its run writes.

An open stream holds no thread and no database connection while it waits: it gives back its
request's thread (`release_request_thread`) and waits on the event loop. One poller per process
(`_Hub`) asks, every POLL seconds and in one query, for the newest event of every run followed;
a stream reads its rows only when there are new ones. Every read runs on one of READERS threads
shared by all streams, on a connection given back to the pool at once: however many streams are
open, they use at most READERS threads and connections. A client that reconnects with
`Last-Event-ID` gets every event after that one.
"""

import asyncio
import contextvars
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.db.models import Max

from agentflow_site.request_threads import release_request_thread
from executions.models import FINISHED, Execution, ExecutionEvent

POLL = 0.2
KEEPALIVE = 15.0
BATCH = 200
READERS = 4
"""Threads (and so pooled connections, each for the moment of a read) all streams share."""

log = logging.getLogger(__name__)
_READER_POOL = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="event-reads")
Row = tuple[int, str, Any]


def sse(event_id: int | None, kind: str, data: Any) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _given_back[T](read: Callable[..., T]) -> Callable[..., T]:
    """`read`, with its connection given back to the pool when it has read."""

    def reading(*args: Any) -> T:
        try:
            return read(*args)
        finally:
            if not connection.in_atomic_block:  # (a test's transaction: kept)
                connection.close()

    return reading


@_given_back
def _read(execution_id: str, last_id: int) -> tuple[list[Row], bool]:
    """The events after `last_id` and, when there are none, whether the run has ended."""
    rows = ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=last_id)
    found = list(rows.order_by("id").values_list("id", "kind", "data")[:BATCH])
    if found:
        return found, False
    status = Execution.objects.filter(pk=execution_id).values_list("status", flat=True)
    return [], status.first() in FINISHED


@_given_back
def _heads(execution_ids: list[str]) -> tuple[dict[str, int], set[str]]:
    """The newest event id of each run, and which of them have ended (two index lookups)."""
    events = ExecutionEvent.objects.filter(execution_id__in=execution_ids)
    newest = events.values("execution_id").annotate(newest=Max("id"))
    ended = Execution.objects.filter(pk__in=execution_ids, status__in=FINISHED)
    return (
        {row["execution_id"]: row["newest"] for row in newest},
        set(ended.values_list("pk", flat=True)),
    )


async def _in_reader[T](read: Callable[..., T], *args: Any) -> T:
    if settings.EVENTS_READ_ON_CALLER_THREAD:
        # A test's rows are in its transaction, on its thread's connection: read there.
        return await sync_to_async(read, thread_sensitive=True)(*args)
    return await sync_to_async(read, thread_sensitive=False, executor=_READER_POOL)(*args)


class _Follower:
    """One open stream: the run it follows, the last event it sent, and its wake-up call."""

    def __init__(self, execution_id: str, last_id: int) -> None:
        self.execution_id, self.last_id = execution_id, last_id
        self.wake = asyncio.Event()


class _Hub:
    """The poller every stream of an event loop shares; it runs while any stream is open."""

    def __init__(self) -> None:
        self.followers: set[_Follower] = set()
        self.task: asyncio.Task[None] | None = None

    def join(self, follower: _Follower) -> None:
        self.followers.add(follower)
        if self.task is None or self.task.done():
            # A test reads on its own thread (found through the context); a server's poller
            # carries no request's context (its ids, its thread).
            on_caller = settings.EVENTS_READ_ON_CALLER_THREAD
            context = contextvars.copy_context() if on_caller else contextvars.Context()
            self.task = asyncio.get_running_loop().create_task(self._run(), context=context)

    def leave(self, follower: _Follower) -> None:
        self.followers.discard(follower)
        if not self.followers and self.task is not None:
            self.task.cancel()  # no stream left: no task left behind either
            self.task = None

    async def _run(self) -> None:
        while self.followers:
            ids = sorted({follower.execution_id for follower in self.followers})
            try:
                newest, ended = await _in_reader(_heads, ids)
            except Exception:  # the database away: the streams wait, it is asked again
                log.warning("event streams could not be polled", exc_info=True)
            else:
                self._wake(newest, ended)
            await asyncio.sleep(POLL)

    def _wake(self, newest: dict[str, int], ended: set[str]) -> None:
        for follower in list(self.followers):
            run = follower.execution_id
            if newest.get(run, 0) > follower.last_id or run in ended:
                follower.wake.set()


_HUBS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub]" = weakref.WeakKeyDictionary()


def _hub() -> _Hub:
    return _HUBS.setdefault(asyncio.get_running_loop(), _Hub())


async def event_stream(execution_id: str, last_id: int = 0) -> AsyncIterator[str]:
    """Every event after `last_id`, as they are written, ending with the run's `end` event."""
    release_request_thread()  # the view has answered: this stream waits on the event loop
    yield "retry: 1000\n\n"
    follower, hub = _Follower(execution_id, last_id), _hub()
    hub.join(follower)
    try:
        async for chunk in _follow(follower):
            yield chunk
    finally:
        hub.leave(follower)


async def _follow(follower: _Follower) -> AsyncIterator[str]:
    while True:
        follower.wake.clear()  # before reading: a wake-up from here on is not missed
        rows, ended = await _in_reader(_read, follower.execution_id, follower.last_id)
        for chunk in _chunks(follower, rows):
            yield chunk
        if any(kind == "end" for _, kind, _ in rows):
            return
        if rows:
            continue
        if ended and not (await _in_reader(_read, follower.execution_id, follower.last_id))[0]:
            return  # ended before events were recorded (an old run): nothing more will come
        try:
            await asyncio.wait_for(follower.wake.wait(), KEEPALIVE)
        except TimeoutError:
            yield ": keep-alive\n\n"


def _chunks(follower: _Follower, rows: Iterable[Row]) -> Iterable[str]:
    for event_id, kind, data in rows:
        follower.last_id = event_id
        yield sse(event_id, kind, data)
        if kind == "end":
            return
