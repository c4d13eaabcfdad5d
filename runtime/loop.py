"""One event loop per process, on its own thread, where every run of the process executes.

Database pools and SDK clients belong to the event loop that made them. With one loop per run
(`asyncio.run` per task) each run opened its own pool and client and closed them at its end;
on this loop they are made once per process and reused by every run after it.

A forked child (django-q2 forks its workers) gets a new loop on first use: the parent's loop
thread does not survive a fork.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None


def runtime_loop() -> asyncio.AbstractEventLoop:
    """The process's runtime loop, started on first use."""
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or _loop.is_closed():
            _loop, _pid = _start(), os.getpid()
        return _loop


def _start() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    threading.Thread(target=serve, name="agentflow-runtime-loop", daemon=True).start()
    ready.wait()
    return loop


def submit[T](coro: Coroutine[Any, Any, T]) -> Future[T]:
    """Start `coro` on the runtime loop; `future.cancel()` cancels its task."""
    return asyncio.run_coroutine_threadsafe(coro, runtime_loop())


def run[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the runtime loop and wait for its result here (a sync caller's thread)."""
    return submit(coro).result()


def on_runtime_loop() -> bool:
    """True inside a coroutine running on this process's runtime loop: what it opens may stay
    open for the next run; on any other loop (a test's or a CLI's `asyncio.run`) it may not."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return running is _loop and _pid == os.getpid()


def _forget_after_fork() -> None:
    global _lock, _loop, _pid
    _lock, _loop, _pid = threading.Lock(), None, None


os.register_at_fork(after_in_child=_forget_after_fork)
