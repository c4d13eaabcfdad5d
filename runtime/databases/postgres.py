"""PostgreSQL sources: one SELECT in a read-only transaction, over psycopg 3 and a pool.

The layers, each beaten alone somewhere, together:
1. pglast parses the text with PostgreSQL's grammar: one plain SELECT, or an early error.
2. `cursor.stream()` always uses the extended protocol, which runs exactly one statement, and
   binds every value there (never spliced into the text).
3. `BEGIN READ ONLY` + `SET LOCAL` statement, lock and idle timeouts; the session default is
   read-only too (`default_transaction_read_only`), and the transaction is always rolled back.
4. Rows stream in and stop at the row or byte cap (the rest of the query is cancelled).
5. A client deadline (bound + grace) cancels the query on the server if its timeout did not.
6. `DISCARD ALL` resets every connection before the pool hands it out again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from runtime.databases.base import (
    ConnectionFailed,
    DatabaseError,
    Query,
    QueryTimeout,
    ReadOnlyViolationError,
    Rows,
)
from runtime.databases.pgpool import PoolEntry, pool_for
from runtime.databases.rows import RowCollector
from runtime.databases.sqlcheck import check_postgres
from runtime.providers.base import EnvLookup, require_env
from runtime.source_configs import PostgresConfig

CLIENT_GRACE_S = 0.5
"""How long after the server's own timeout the client gives up and cancels the query."""
STREAM_CHUNK = 100


class PostgresDatabase:
    kind = "postgres"

    def __init__(self, config: PostgresConfig, env: EnvLookup) -> None:
        self.config = config
        self.env = env

    async def select(self, query: Query) -> Rows:
        check_postgres(query.sql)
        bound_ms = self._bound_ms(query)
        async with self._transaction(bound_ms) as conn:
            try:
                async with asyncio.timeout(bound_ms / 1000 + CLIENT_GRACE_S):
                    return await _fetch(conn, query)
            except TimeoutError:
                # psycopg sent a cancel when the task was cancelled; the connection is closed
                # below rather than trusted again.
                await conn.close()
                raise QueryTimeout(_timeout_message(bound_ms)) from None

    async def run_admin(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one trusted, read-only query of ours (the source test), not a node's."""
        async with self._transaction(self.config.statement_timeout_ms) as conn:
            cursor = await conn.execute(sql)
            return await cursor.fetchall()

    def _bound_ms(self, query: Query) -> int:
        """The node's timeout, never past the source's `statement_timeout_ms`."""
        limit = self.config.statement_timeout_ms
        return min(query.timeout_ms, limit) if query.timeout_ms else limit

    @asynccontextmanager
    async def _transaction(self, bound_ms: int) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        entry = pool_for(self._conninfo(), self.config)
        async with entry.connection(self.kind) as conn:
            try:
                await _begin_read_only(conn, bound_ms)
                yield conn
            except psycopg.Error as exc:
                raise _translate(exc, bound_ms, entry) from exc
            finally:
                await _rollback(conn)

    def _conninfo(self) -> str:
        dsn = require_env(self.env, self.config.connection_string_env, source_kind=self.kind)
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise DatabaseError(
                f"The variable {self.config.connection_string_env} does not hold a valid "
                "PostgreSQL connection string (a postgresql:// URL or key=value pairs)."
            ) from None
        if self.config.sslmode:
            params["sslmode"] = self.config.sslmode
        return psycopg.conninfo.make_conninfo("", **params)


async def _begin_read_only(conn: psycopg.AsyncConnection[Any], bound_ms: int) -> None:
    # Our own statements, with no parameters: one round trip over the simple protocol (the
    # tenant's query never goes this way; it is streamed over the extended protocol).
    bound, idle_ms = int(bound_ms), int(bound_ms + CLIENT_GRACE_S * 1000 + 1000)
    await conn.execute(
        f"BEGIN READ ONLY; SET LOCAL statement_timeout = {bound}; "
        f"SET LOCAL lock_timeout = {bound}; "
        f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms}"
    )


async def _fetch(conn: psycopg.AsyncConnection[Any], query: Query) -> Rows:
    cursor = conn.cursor()
    chunk = STREAM_CHUNK if psycopg.capabilities.has_stream_chunked() else 1
    collector: RowCollector | None = None
    # stream() forces the extended protocol, so the server accepts exactly one statement.
    stream = cursor.stream(query.sql, dict(query.params) or None, size=chunk)
    async with aclosing(stream) as rows:  # type: ignore[type-var]
        async for row in rows:
            if collector is None:
                collector = RowCollector(_columns(cursor), query)
            if not collector.add(row):
                break
    return (collector or RowCollector(_columns(cursor), query)).result()


def _columns(cursor: psycopg.AsyncCursor[Any]) -> list[str]:
    return [column.name for column in cursor.description or ()]


async def _rollback(conn: psycopg.AsyncConnection[Any]) -> None:
    if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    try:
        await conn.execute("ROLLBACK")
    except psycopg.Error:
        await conn.close()  # the pool replaces a closed connection


def _translate(exc: psycopg.Error, bound_ms: int, entry: PoolEntry) -> Exception:
    detail = entry.scrub(getattr(exc.diag, "message_primary", None) or str(exc))
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction | pg_errors.ActiveSqlTransaction):
        return ReadOnlyViolationError(f"The db node only reads; PostgreSQL refused: {detail}.")
    if isinstance(exc, pg_errors.QueryCanceled | pg_errors.LockNotAvailable):
        return QueryTimeout(_timeout_message(bound_ms))
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return DatabaseError(f"The source's database role may not do this: {detail}.")
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return ConnectionFailed(f"The connection to the postgres source was lost: {detail}.")
    if isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None:
        return DatabaseError(f"The query's parameters do not match its placeholders: {detail}.")
    return DatabaseError(f"PostgreSQL refused the query: {detail}.")


def _timeout_message(bound_ms: int) -> str:
    return f"The query ran past its timeout ({bound_ms} ms) and was cancelled on the server."


def postgres_factory(config: PostgresConfig, env: EnvLookup) -> PostgresDatabase:
    return PostgresDatabase(config, env)
