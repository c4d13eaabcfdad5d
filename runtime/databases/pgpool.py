"""One psycopg pool per PostgreSQL source (connection string + pool settings), per event loop.

Pools are keyed by a hash of the connection string, never the string itself: it holds a
password, and nothing here logs it or puts it in a message. A pool belongs to the event loop
that created it (its workers are tasks of that loop), so each loop gets its own.

psycopg_pool makes a waiting client wait `pool_timeout` even when the server refuses every
connection; a `PoolEntry` also listens for connect failures, so a dead server fails the
request as soon as an attempt fails, with the driver's reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from runtime.databases.base import ConnectionFailed
from runtime.source_configs import PostgresConfig

CONNECT_TIMEOUT_S = 10
SESSION_OPTIONS = "-c default_transaction_read_only=on"
APPLICATION_NAME = "agentflow-db-node"

_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, PoolEntry]] = (
    weakref.WeakKeyDictionary()
)


class PoolEntry:
    def __init__(self, conninfo: str, config: PostgresConfig) -> None:
        self._secrets = _secrets(conninfo)
        self._next_failure: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.timeout = config.pool_timeout
        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo,
            connection_class=_recording_connection(self),
            kwargs={
                "autocommit": True,  # transactions are explicit: BEGIN READ ONLY … ROLLBACK
                "connect_timeout": min(CONNECT_TIMEOUT_S, max(1, int(config.pool_timeout))),
                "options": SESSION_OPTIONS,
                "application_name": APPLICATION_NAME,
                # DISCARD ALL drops server-side prepared statements; psycopg's automatic
                # preparing (after 5 runs of the same text) would then use ones that are gone.
                "prepare_threshold": None,
            },
            min_size=config.pool_size,
            max_size=config.pool_size + config.max_overflow,
            timeout=config.pool_timeout,
            check=AsyncConnectionPool.check_connection,
            reset=_discard_all,
            open=False,
            name=f"postgres-{_digest(conninfo)[:12]}",
        )

    @asynccontextmanager
    async def connection(self, kind: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A checked, reset connection, or `ConnectionFailed` naming the source kind."""
        conn = await self._checkout(kind)
        try:
            yield conn
        finally:
            await self.pool.putconn(conn)

    def connect_failed(self, exc: Exception) -> None:
        future, self._next_failure = (
            self._next_failure,
            self._next_failure.get_loop().create_future(),
        )
        if not future.done():
            future.set_result(self.scrub(str(exc).strip().splitlines()[0]))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _checkout(self, kind: str) -> psycopg.AsyncConnection[Any]:
        if self.pool.closed:
            await self.pool.open(wait=False)
        failure = self._next_failure
        getter: asyncio.Future[psycopg.AsyncConnection[Any]]
        getter = asyncio.ensure_future(self.pool.getconn())
        racers: list[asyncio.Future[Any]] = [getter, failure]
        await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return await self._got(getter, kind)
        getter.cancel()
        with suppress(asyncio.CancelledError, PoolTimeout):
            return await getter  # it arrived while being cancelled
        raise ConnectionFailed(f"Could not connect to the {kind} source: {failure.result()}.")

    async def _got(
        self, getter: asyncio.Future[psycopg.AsyncConnection[Any]], kind: str
    ) -> psycopg.AsyncConnection[Any]:
        try:
            return getter.result()
        except PoolTimeout:
            raise ConnectionFailed(
                f"Could not get a connection to the {kind} source within {self.timeout:g} s: "
                "the server is slow to accept connections or every pooled one is busy."
            ) from None


def pool_for(conninfo: str, config: PostgresConfig) -> PoolEntry:
    """The pool for this connection string and settings in the running loop, made on first use."""
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    key = _digest(f"{conninfo}\0{config.model_dump_json()}")
    if key not in pools:
        pools[key] = PoolEntry(conninfo, config)
    return pools[key]


async def close_pools() -> None:
    """Close the running loop's pools (call before the loop ends: `asyncio.run` per task)."""
    pools = _POOLS.pop(asyncio.get_running_loop(), {})
    for entry in pools.values():
        await entry.pool.close()


async def _discard_all(conn: psycopg.AsyncConnection[Any]) -> None:
    # Prepared statements, temp tables, advisory locks, SET/SET ROLE: nothing outlives a use.
    await conn.execute("DISCARD ALL")


def _recording_connection(entry: PoolEntry) -> type[psycopg.AsyncConnection[Any]]:
    class RecordingConnection(psycopg.AsyncConnection[Any]):
        @classmethod
        async def connect(cls, *args: Any, **kwargs: Any) -> Self:
            try:
                return await super().connect(*args, **kwargs)
            except psycopg.OperationalError as exc:
                entry.connect_failed(exc)
                raise

    return RecordingConnection


def _secrets(conninfo: str) -> list[str]:
    with suppress(psycopg.Error):
        password = conninfo_to_dict(conninfo).get("password")
        return [conninfo, str(password)] if password else [conninfo]
    return [conninfo]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
