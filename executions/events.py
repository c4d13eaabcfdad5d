"""Server-sent events for one execution, read from the ExecutionEvent rows its run writes.

The stream is an async iterator: under ASGI (uvicorn) an open stream holds no thread while it
waits, so many clients can follow runs at once. A client that reconnects with `Last-Event-ID`
gets every event after that one.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from executions.models import FINISHED, Execution, ExecutionEvent

POLL = 0.2
KEEPALIVE = 15.0
BATCH = 200


def sse(event_id: int | None, kind: str, data: Any) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _after(execution_id: str, last_id: int) -> list[ExecutionEvent]:
    rows = ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=last_id)
    return [row async for row in rows.order_by("id")[:BATCH]]


async def _finished(execution_id: str) -> bool:
    status = (
        await Execution.objects.filter(pk=execution_id).values_list("status", flat=True).afirst()
    )
    return status in FINISHED


async def event_stream(execution_id: str, last_id: int = 0) -> AsyncIterator[str]:
    """Every event after `last_id`, as they are written, ending with the run's `end` event."""
    quiet_since = time.monotonic()
    yield "retry: 1000\n\n"
    while True:
        rows = await _after(execution_id, last_id)
        for row in rows:
            yield sse(row.pk, row.kind, row.data)
            last_id = row.pk
            if row.kind == "end":
                return
        if rows:
            quiet_since = time.monotonic()
            continue
        if await _finished(execution_id) and not await _after(execution_id, last_id):
            return  # ended before events were recorded (an old run): nothing more will come
        if time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL)
