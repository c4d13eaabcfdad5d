"""Server-sent events for one execution, read from the ExecutionEvent rows its run writes.

The stream is an async iterator: under ASGI (uvicorn) an open stream waits on the event loop,
and reads on a pooled thread with a connection it gives back after each read, so many clients
can follow runs at once without taking the connections other requests need. A client that
reconnects with `Last-Event-ID` gets every event after that one.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from executions.models import FINISHED, Execution, ExecutionEvent

POLL = 0.2
KEEPALIVE = 15.0
BATCH = 200


def sse(event_id: int | None, kind: str, data: Any) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


Row = tuple[int, str, Any]


def _read(execution_id: str, last_id: int) -> tuple[list[Row], bool]:
    """The events after `last_id` and, when there are none, whether the run has ended; on a
    connection given back at once (to the pool): a waiting stream holds none."""
    try:
        rows = ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=last_id)
        found = list(rows.order_by("id").values_list("id", "kind", "data")[:BATCH])
        if found:
            return found, False
        status = Execution.objects.filter(pk=execution_id).values_list("status", flat=True)
        return [], status.first() in FINISHED
    finally:
        if not connection.in_atomic_block:  # (a test's transaction: kept)
            connection.close()


async def _poll(execution_id: str, last_id: int) -> tuple[list[Row], bool]:
    # Not thread-sensitive: a thread of the shared pool for the moment of the query, not a
    # thread (and its connection) of the stream's own for as long as it is open.
    on_caller = settings.EVENTS_READ_ON_CALLER_THREAD
    return await sync_to_async(_read, thread_sensitive=on_caller)(execution_id, last_id)


async def event_stream(execution_id: str, last_id: int = 0) -> AsyncIterator[str]:
    """Every event after `last_id`, as they are written, ending with the run's `end` event."""
    quiet_since = time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        rows, ended = await _poll(execution_id, last_id)
        for event_id, kind, data in rows:
            yield sse(event_id, kind, data)
            last_id = event_id
            if kind == "end":
                return
        if rows:
            quiet_since = time.monotonic()
            continue
        if ended and not (await _poll(execution_id, last_id))[0]:
            return  # ended before events were recorded (an old run): nothing more will come
        if time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL)
