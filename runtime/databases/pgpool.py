"""PostgreSQL connections for the db node: one `PgSource` per source config per event loop, its
connections in a process-wide `Pool` (runtime/databases/pool.py: lazy, capped, shared by runs).

Sources are keyed by a hash of the connection string, never the string itself: it holds a
password, and nothing here logs it or puts it in a message (`scrub` removes it from the
driver's). Each source's connections carry `application_name = "agentflow-db-node <hash>"`,
so an operator can tell them apart in `pg_stat_activity`.

A connection coming back is rolled back and reset (`DISCARD ALL`) in the background before
anyone may take it again; a dead idle connection is noticed by the first statement sent on it
(the node's `BEGIN`) and replaced, so a checkout costs no extra round trip.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from runtime.databases.base import ConnectionFailed
from runtime.databases.limits import db_limits
from runtime.databases.pool import Pool, PoolSettings, holder_for
from runtime.databases.pool import close_pools as close_pools
from runtime.databases.roles import RoleFacts
from runtime.source_configs import PostgresConfig

CONNECT_TIMEOUT_S = 10
SESSION_OPTIONS = "-c default_transaction_read_only=on"
APPLICATION_NAME = "agentflow-db-node"

AsyncConnection = psycopg.AsyncConnection[Any]


class PgSource:
    def __init__(self, conninfo: str, config: PostgresConfig, key: str) -> None:
        limits = db_limits()
        asked = config.pool_size + config.max_overflow
        size = min(asked, limits.max_per_source)
        timeout = min(config.pool_timeout, limits.pool_timeout)
        self.application_name = f"{APPLICATION_NAME} {key[:12]}"
        self.facts: RoleFacts | None = None
        """What the role may do and which functions `x.name` can call: asked once, then kept
        (runtime/databases/roles.py)."""
        self._conninfo = conninfo
        self._secrets = _secrets(conninfo)
        self._connect_timeout = min(CONNECT_TIMEOUT_S, max(1, int(timeout)))
        self.pool: Pool[AsyncConnection] = Pool(
            PoolSettings(
                "postgres",
                max_size=size,
                keep=min(config.pool_size, size),
                timeout=timeout,
                asked=asked,
                asked_by="pool_size + max_overflow",
            ),
            open=self._open,
            close=_close,
            reset=_reset,
        )

    @asynccontextmanager
    async def transaction(
        self, begin: Callable[[AsyncConnection], Awaitable[None]]
    ) -> AsyncIterator[AsyncConnection]:
        """A pooled connection on which `begin` succeeded; given back (and reset) after."""
        conn = await self._begun(begin)
        try:
            yield conn
        finally:
            self.pool.release(conn, reusable=not conn.closed)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _begun(self, begin: Callable[[AsyncConnection], Awaitable[None]]) -> AsyncConnection:
        while True:
            conn, new = await self.pool.acquire()
            try:
                await begin(conn)
                return conn
            except psycopg.OperationalError:
                self.pool.release(conn, reusable=not conn.closed)
                if new or not conn.closed:
                    raise
                # An idle connection died meanwhile (server restart, terminated): next one.
            except BaseException:
                self.pool.release(conn, reusable=not conn.closed)
                raise

    async def _open(self) -> AsyncConnection:
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,  # transactions are explicit: BEGIN READ ONLY … ROLLBACK
                connect_timeout=self._connect_timeout,
                options=SESSION_OPTIONS,
                application_name=self.application_name,
                # DISCARD ALL drops server-side prepared statements; psycopg's automatic
                # preparing (after 5 runs of the same text) would then use ones that are gone.
                prepare_threshold=None,
            )
        except psycopg.OperationalError as exc:
            reason = self.scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            raise ConnectionFailed(
                f"Could not connect to the postgres source: {reason or type(exc).__name__}."
            ) from None


def source_key(conninfo: str, config: PostgresConfig) -> tuple[str, str]:
    """`(conninfo, key)`: the key names one pool, and is not secret (a hash)."""
    return conninfo, _digest(f"postgres\0{conninfo}\0{config.model_dump_json()}")


def source_for(conninfo: str, key: str, config: PostgresConfig) -> PgSource:
    """The running loop's source for `source_key(conninfo, config)`, made on first use."""
    return holder_for(key, lambda: PgSource(conninfo, config, key))


async def _reset(conn: AsyncConnection) -> bool:
    # Whatever the node left open is rolled back; then prepared statements, temp tables,
    # advisory locks, SET/SET ROLE: nothing outlives a use.
    status = conn.info.transaction_status
    if conn.closed or status not in (_IDLE, _INTRANS, _INERROR):
        return False
    try:
        if status != _IDLE:
            await conn.execute("ROLLBACK")
        await conn.execute("DISCARD ALL")
    except psycopg.Error:
        return False
    return True


def _close(conn: AsyncConnection) -> None:
    # AsyncConnection.close() never awaits: it is libpq's PQfinish. Calling that directly lets
    # any thread close an idle connection (the process-wide cap takes one from another loop).
    conn.pgconn.finish()


_IDLE = psycopg.pq.TransactionStatus.IDLE
_INTRANS = psycopg.pq.TransactionStatus.INTRANS
_INERROR = psycopg.pq.TransactionStatus.INERROR


def _secrets(conninfo: str) -> list[str]:
    with suppress(psycopg.Error):
        password = conninfo_to_dict(conninfo).get("password")
        return [conninfo, str(password)] if password else [conninfo]
    return [conninfo]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
