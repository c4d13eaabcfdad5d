"""A request's thread for Django's sync code, which a response that waits can give back.

Django's ASGI handler runs a request's sync code (sync middleware, a sync view, signal receivers)
on a thread of the request's own, kept until the response has been sent: an event stream open
for an hour kept an idle thread for that hour. Here each request's sync code runs on an
executor of the request's own (one thread, made when first needed, as Django's), which a
streaming response lets go once it waits on the event loop (`release_request_thread`): a later
call (Django closing the response) is given a new thread.
"""

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

from asgiref.sync import ThreadSensitiveContext

from agentflow_site.middleware import ASGIApp, Receive, Send


class RequestExecutor(Executor):
    """One thread at a time for one request's sync code; `release()` ends it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
            return self._pool.submit(fn, *args, **kwargs)

    def release(self) -> None:
        """End the thread once it has nothing to do (never waited for: the event loop may be
        what its last call waits on)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.release()


_CURRENT: ContextVar[RequestExecutor | None] = ContextVar("request_executor", default=None)


def release_request_thread() -> None:
    """Give back the thread of the request being answered (none outside ASGI: a no-op)."""
    executor = _CURRENT.get()
    if executor is not None:
        executor.release()


class RequestThreadMiddleware:
    """ASGI middleware around Django's handler: each HTTP request's sync code on its own
    `RequestExecutor`, released when the response has been sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        executor = RequestExecutor()
        token = _CURRENT.set(executor)
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.app(scope, receive, send)
        finally:
            _CURRENT.reset(token)
            executor.release()
