"""Database connection pools that belong to the process, not to a run.

One pool per source config per event loop (a driver's async connection belongs to the loop
that made it). On the process's runtime loop (`runtime.loop`) a pool outlives the run that
opened it and serves every later run; on any other loop (a test's or the CLI's `asyncio.run`)
`close_pools()` closes that loop's pools before the loop ends.

A pool opens connections only when asked (none up front) and at most `max_size`, which the
operator's `max_per_source` caps whatever the source asks. Every open connection of every pool
also holds one slot of the process-wide `max_total`: a pool that may grow but finds every slot
taken closes another pool's oldest idle connection to make room, or else waits, at most its
timeout, for a connection or a slot, then fails with `db_pool_exhausted`. Connections idle for
`idle_timeout` are closed, and a pool left with none is dropped.

One lock guards the counters of every pool (on any loop or thread). It is never held across
an await or I/O; closing a connection is synchronous for both drivers, so any thread may close
an idle one.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.databases.base import ConnectionFailed, PoolExhausted
from runtime.databases.limits import db_limits
from runtime.loop import on_runtime_loop

_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class PoolSettings:
    kind: str
    """The source kind, for messages."""
    max_size: int
    """Connections open at most: the source's ask, capped by the operator."""
    keep: int
    """Idle connections kept after use (`pool_size`); more are closed when returned."""
    timeout: float
    """Seconds a checkout waits at most."""
    asked: int
    """What the source's config asks for, for messages."""
    asked_by: str = "pool_size"
    """The config fields that ask it, for messages."""


class _Budget:
    """The process's connection slots: one per open (or opening) connection of any pool."""

    def __init__(self) -> None:
        self.used = 0
        self.pools: weakref.WeakSet[Pool[Any]] = weakref.WeakSet()

    def take_locked(self) -> bool:
        if self.used >= db_limits().max_total:
            return False
        self.used += 1
        return True

    def give_locked(self, count: int = 1) -> None:
        self.used -= count
        self.wake_locked()

    def wake_locked(self, but: Pool[Any] | None = None) -> None:
        """Wake one waiter of every pool (but one): a slot, or an idle connection to close for
        one, came free."""
        for pool in list(self.pools):
            if pool is not but:
                pool.wake_locked()

    def oldest_idle_locked(self, asking: Pool[Any]) -> tuple[Pool[Any], Any] | None:
        """Take the oldest idle connection of any other pool out of it (to close it)."""
        owners = [p for p in self.pools if p is not asking and p.idle]
        if not owners:
            return None
        owner = min(owners, key=lambda p: p.idle[0][1])
        conn, _since = owner.idle.pop(0)
        owner.size -= 1
        return owner, conn


_BUDGET = _Budget()


class Pool[C]:
    """Connections to one source on one event loop; see the module docstring."""

    def __init__(
        self,
        settings: PoolSettings,
        *,
        open: Callable[[], Awaitable[C]],
        close: Callable[[C], None],
        reset: Callable[[C], Awaitable[bool]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.idle: list[tuple[C, float]] = []
        """Idle connections with the time each came back, oldest first."""
        self.size = 0
        """Connections open or opening (idle and in use)."""
        self.last_used = clock()
        self.closed = False
        self._open, self._close, self._reset = open, close, reset
        self._loop = asyncio.get_running_loop()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._resets: set[asyncio.Task[None]] = set()
        with _LOCK:
            _BUDGET.pools.add(self)

    async def acquire(self) -> tuple[C, bool]:
        """A connection, and whether it is new (an idle one may have died since its last use).

        Raises:
            PoolExhausted: none came free within the pool's timeout.
            ConnectionFailed: the pool was closed, or the driver could not connect.
        """
        deadline = self.clock() + self.settings.timeout
        woken = False
        while True:
            with _LOCK:
                if self.closed:
                    raise ConnectionFailed(f"The {self.settings.kind} source's pool was closed.")
                self.last_used = self.clock()
                if self.idle:
                    return self.idle.pop()[0], False
                grow = self.size < self.settings.max_size and _BUDGET.take_locked()
                if grow:
                    self.size += 1
                else:
                    waiter = self._waiter_locked(first=woken)
                    starved = self.size < self.settings.max_size
            if grow:
                return await self._connect(), True
            if starved:
                self._reclaim()
            await self._wait(waiter, deadline)
            woken = True

    def release(self, conn: C, *, reusable: bool) -> None:
        """Give a connection back: reset (in the background) and kept, or closed.

        Any thread may call it for a pool without `reset`; with one, only the pool's loop."""
        if not reusable or self.closed:
            self._discard(conn)
        elif self._reset is None:
            self._put_back(conn)
        else:
            task = self._loop.create_task(self._reset_and_put_back(conn))
            self._resets.add(task)
            task.add_done_callback(self._resets.discard)

    def sweep(self) -> int:
        """Close connections idle for longer than `idle_timeout`; how many were closed."""
        cutoff = self.clock() - db_limits().idle_timeout
        with _LOCK:
            stale = [conn for conn, since in self.idle if since <= cutoff]
            self.idle = [(conn, since) for conn, since in self.idle if since > cutoff]
            self.size -= len(stale)
        for conn in stale:
            self._close_quietly(conn)
        if stale:
            with _LOCK:
                _BUDGET.give_locked(len(stale))
        return len(stale)

    def retire_if_unused(self) -> bool:
        """Close the pool if it has no connection, nobody waits and nobody asked for one for
        `idle_timeout`; whether it did."""
        cutoff = self.clock() - db_limits().idle_timeout
        with _LOCK:
            if self.size or self._waiters or self.last_used > cutoff:
                return False
            self.closed = True
            _BUDGET.pools.discard(self)
            return True

    async def close(self) -> None:
        """Close idle connections now and in-use ones when they come back."""
        with _LOCK:
            self.closed = True
            while self._waiters:
                self.wake_locked()
        if self._resets:
            await asyncio.gather(*self._resets, return_exceptions=True)
        with _LOCK:
            idle, self.idle = self.idle, []
            self.size -= len(idle)
            _BUDGET.pools.discard(self)
        for conn, _since in idle:
            self._close_quietly(conn)
        if idle:
            with _LOCK:
                _BUDGET.give_locked(len(idle))

    def wake_locked(self) -> None:
        """Tell the first waiter to try again (a connection or a slot came free)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._resolve(waiter)
                return

    def _waiter_locked(self, *, first: bool) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self._loop.create_future()
        if first:  # woken but beaten to it: keep its place at the front
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        return waiter

    def _resolve(self, waiter: asyncio.Future[None]) -> None:
        if _running_loop() is self._loop:
            waiter.set_result(None)
            return
        with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._deliver, waiter)

    def _deliver(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)
            return
        with _LOCK:  # it gave up meanwhile: the wake goes to the next one
            self.wake_locked()

    async def _wait(self, waiter: asyncio.Future[None], deadline: float) -> None:
        try:
            async with asyncio.timeout(max(0.0, deadline - self.clock())):
                await waiter
        except TimeoutError:
            self._forget(waiter)
            raise self._exhausted() from None
        except asyncio.CancelledError:
            self._forget(waiter)
            raise

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        with _LOCK:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.wake_locked()  # it was woken as it gave up: pass the wake on

    async def _connect(self) -> C:
        try:
            return await self._open()
        except BaseException:
            with _LOCK:
                self.size -= 1
                _BUDGET.give_locked()
            raise

    def _reclaim(self) -> None:
        """Close another pool's oldest idle connection: its slot is worth more to a waiter."""
        with _LOCK:
            found = _BUDGET.oldest_idle_locked(self)
        if found is not None:
            owner, conn = found
            owner._close_quietly(conn)
            with _LOCK:
                _BUDGET.give_locked()

    async def _reset_and_put_back(self, conn: C) -> None:
        assert self._reset is not None
        try:
            ok = await self._reset(conn)
        except BaseException:
            self._discard(conn)
            raise
        if ok:
            self._put_back(conn)
        else:
            self._discard(conn)

    def _put_back(self, conn: C) -> None:
        with _LOCK:
            if not self.closed and (self._waiters or len(self.idle) < self.settings.keep):
                self.idle.append((conn, self.clock()))
                if self._waiters:
                    self.wake_locked()
                elif _BUDGET.used >= db_limits().max_total:
                    _BUDGET.wake_locked(but=self)  # another pool may close it for a slot
                return
        self._discard(conn)

    def _discard(self, conn: C) -> None:
        self._close_quietly(conn)
        with _LOCK:
            self.size -= 1
            _BUDGET.give_locked()

    def _close_quietly(self, conn: C) -> None:
        with suppress(Exception):
            self._close(conn)

    def _exhausted(self) -> PoolExhausted:
        limits, kind, timeout = db_limits(), self.settings.kind, self.settings.timeout
        waited = f"No connection to the {kind} source came free within {timeout:g} s"
        if self.size >= self.settings.max_size:
            asked, asked_by = self.settings.asked, self.settings.asked_by
            more = (
                f"raise the source's {asked_by}"
                if asked < limits.max_per_source
                else "ask the operator to raise AGENTFLOW_DB_POOL_MAX_PER_SOURCE"
            )
            return PoolExhausted(
                f"{waited}: all {self.settings.max_size} this process may open to it are busy "
                f"(the source asks for {asked_by} = {asked}; the operator allows at most "
                f"{limits.max_per_source} per source, AGENTFLOW_DB_POOL_MAX_PER_SOURCE). "
                f"Run fewer db nodes at once, or {more}."
            )
        return PoolExhausted(
            f"{waited}: this process's {limits.max_total} database connections for all "
            "sources are busy (AGENTFLOW_DB_POOL_MAX_TOTAL). Retry later, or ask the operator "
            "to raise it."
        )


class PoolHolder(Protocol):
    @property
    def pool(self) -> Pool[Any]: ...


_HOLDERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
_SWEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.TimerHandle] = (
    weakref.WeakKeyDictionary()
)
_INHERITED: list[Any] = []


def holder_for[H: PoolHolder](key: str, make: Callable[[], H]) -> H:
    """The running loop's pool holder (a source's driver and pool) for `key`, made on first use.

    `key` must not be secret (hash a connection string); `make` runs on the running loop."""
    loop = asyncio.get_running_loop()
    holders = _HOLDERS.setdefault(loop, {})
    holder: H | None = holders.get(key)
    if holder is None or holder.pool.closed:
        holder = holders[key] = make()
        _schedule_sweep(loop)
    return holder


async def close_pools(*, shutdown: bool = False) -> None:
    """Close the running loop's pools. Call before a loop of your own ends (`asyncio.run` per
    task, tests). On the runtime loop it does nothing, since its pools serve the runs after
    this one, unless the process is shutting down (`shutdown=True`)."""
    if on_runtime_loop() and not shutdown:
        return
    loop = asyncio.get_running_loop()
    sweeper = _SWEEPERS.pop(loop, None)
    if sweeper is not None:
        sweeper.cancel()
    for holder in _HOLDERS.pop(loop, {}).values():
        await holder.pool.close()


def open_connections() -> int:
    """Connections open (or opening) in this process, all pools together."""
    with _LOCK:
        return _BUDGET.used


def _schedule_sweep(loop: asyncio.AbstractEventLoop) -> None:
    if loop not in _SWEEPERS:
        every = max(1.0, db_limits().idle_timeout / 4)
        _SWEEPERS[loop] = loop.call_later(every, _sweep, loop)


def _sweep(loop: asyncio.AbstractEventLoop) -> None:
    _SWEEPERS.pop(loop, None)
    holders = _HOLDERS.get(loop, {})
    for key, holder in list(holders.items()):
        holder.pool.sweep()
        if holder.pool.retire_if_unused():
            del holders[key]
    if holders:
        _schedule_sweep(loop)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _forget_after_fork() -> None:
    # The parent's connections are the parent's: a child that closed them (even by garbage
    # collection) would end the parent's sessions. Keep them referenced and never touch them.
    global _LOCK, _BUDGET, _HOLDERS, _SWEEPERS
    _INHERITED.append((dict(_HOLDERS), _BUDGET))
    _LOCK, _BUDGET = threading.Lock(), _Budget()
    _HOLDERS, _SWEEPERS = weakref.WeakKeyDictionary(), weakref.WeakKeyDictionary()


os.register_at_fork(after_in_child=_forget_after_fork)
