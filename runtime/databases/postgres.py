"""PostgreSQL sources: one SELECT in a read-only transaction, over psycopg 3 and a pool.

The layers, each beaten alone somewhere, together:
1. pglast parses the text with PostgreSQL's grammar: one plain SELECT calling only allowed
   functions (runtime/databases/sqlcheck.py), or an early error. Once per source, the role is
   checked (a superuser or a file-reading role is refused unless the operator allows it) and
   the database's one-argument functions are listed, which `x.name` could call.
2. `cursor.stream()` always uses the extended protocol, which runs exactly one statement, and
   binds every value there (never spliced into the text).
3. `BEGIN READ ONLY` + `SET LOCAL` statement, lock and idle timeouts; the session default is
   read-only too (`default_transaction_read_only`), and the transaction is always rolled back.
4. The query runs nested in ours (`bounded_sql`): the server sends at most the page's rows, and
   fails a row larger than the byte cap before sending it (libpq only ever holds whole rows,
   so the client could not stop one half-way). Rows stream in one at a time and stop at the
   byte cap (the rest of the query is cancelled).
5. A client deadline (bound + grace) cancels the query on the server if its timeout did not.
6. `ROLLBACK` and `DISCARD ALL` reset every connection before the pool hands it out again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from functools import partial
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
    row_too_large,
)
from runtime.databases.functions import DEFAULT_POLICY, SQLPolicy
from runtime.databases.limits import db_limits
from runtime.databases.pgpool import PgSource, source_for, source_key
from runtime.databases.roles import PG_FACTS, pg_role_facts
from runtime.databases.rows import RowCollector
from runtime.databases.sqlcheck import PgChecked, check_pg_fields, check_postgres, pg_statement_text
from runtime.providers.base import EnvLookup, require_env
from runtime.source_configs import PostgresConfig

AsyncConnection = psycopg.AsyncConnection[Any]
CLIENT_GRACE_S = 0.5
"""How long after the server's own timeout the client gives up and cancels the query."""
ROW_TOO_LARGE = "agentflow_row_too_large"
"""The marker of the error the server raises for a row past the byte cap (see `bounded_sql`)."""


class PostgresDatabase:
    kind = "postgres"

    def __init__(
        self, config: PostgresConfig, env: EnvLookup, policy: SQLPolicy = DEFAULT_POLICY
    ) -> None:
        self.config = config
        self.env = env
        self.policy = policy
        self._source_key: tuple[str, str] | None = None
        """The connection string and its pool's key, worked out once per adapter (per run)."""

    async def select(self, query: Query) -> Rows:
        checked = check_postgres(query.sql, self.policy)
        bound_ms, max_bytes = self._bound_ms(query), db_limits().max_bytes
        async with self._transaction(bound_ms, max_bytes) as (conn, source):
            await self._gate(conn, source, checked)
            try:
                async with asyncio.timeout(bound_ms / 1000 + CLIENT_GRACE_S):
                    return await _fetch(conn, query, max_bytes)
            except TimeoutError:
                # psycopg sent a cancel when the task was cancelled; the connection is closed
                # below rather than trusted again.
                await conn.close()
                raise QueryTimeout(_timeout_message(bound_ms)) from None

    async def run_admin(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one trusted, read-only query of ours (the source test), not a node's."""
        timeout_ms = self.config.statement_timeout_ms
        async with self._transaction(timeout_ms, db_limits().max_bytes) as (conn, _source):
            cursor = await conn.execute(sql)
            return await cursor.fetchall()

    async def _gate(self, conn: AsyncConnection, source: PgSource, checked: PgChecked) -> None:
        """Refuse a privileged role (unless allowed) and `x.name` calls of functions that are
        not allowed; what the database says is asked once per source and kept."""
        facts = source.facts
        if facts is None:
            cursor = await conn.execute(PG_FACTS)
            facts = pg_role_facts(await cursor.fetchone() or (False, [], "?", []))
        # Raises before the facts are kept: a refused role is asked about again next time (the
        # operator may have fixed it meanwhile).
        facts.check(self.kind, self.policy.allow_privileged_roles)
        source.facts = facts
        check_pg_fields(checked, self.policy, facts.field_functions)

    def _bound_ms(self, query: Query) -> int:
        """The node's timeout, never past the source's `statement_timeout_ms`."""
        limit = self.config.statement_timeout_ms
        return min(query.timeout_ms, limit) if query.timeout_ms else limit

    @asynccontextmanager
    async def _transaction(
        self, bound_ms: int, max_bytes: int
    ) -> AsyncIterator[tuple[AsyncConnection, PgSource]]:
        if self._source_key is None:
            self._source_key = source_key(self._conninfo(), self.config)
        source = source_for(*self._source_key, self.config)
        try:
            async with source.transaction(partial(_begin_read_only, bound_ms=bound_ms)) as conn:
                yield conn, source
        except psycopg.Error as exc:
            raise _translate(exc, bound_ms, max_bytes, source) from exc

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


async def _begin_read_only(conn: psycopg.AsyncConnection[Any], *, bound_ms: int) -> None:
    # Our own statements, with no parameters: one round trip over the simple protocol (the
    # tenant's query never goes this way; it is streamed over the extended protocol).
    bound, idle_ms = int(bound_ms), int(bound_ms + CLIENT_GRACE_S * 1000 + 1000)
    await conn.execute(
        f"BEGIN READ ONLY; SET LOCAL statement_timeout = {bound}; "
        f"SET LOCAL lock_timeout = {bound}; "
        f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms}"
    )


def bounded_sql(sql: str, *, max_rows: int, offset: int, max_bytes: int) -> str:
    """The tenant's SELECT nested in ours: the page's rows only, each one checked on the server.

    A row whose size (stored, or as text: a compressed value is small stored but not as sent)
    passes `max_bytes` makes the server raise an error naming `ROW_TOO_LARGE` instead of
    sending it. The error's text is built from the row, so the planner cannot fold it into a
    constant and raise it for every query. A `LIMIT`/`OFFSET` over an ordered subquery keeps
    its order; `q.*` keeps duplicate and unnamed columns as they are.
    """
    # `w.*`, never a bare `w`: that would name a column `w` of the query if it had one.
    size = f"pg_column_size(w.*) > {max_bytes} OR octet_length((w.*)::text) > {max_bytes}"
    fail = f"('{ROW_TOO_LARGE} ' || pg_column_size(w.*))::int IS NULL"
    return (
        f"SELECT w.* FROM (SELECT q.* FROM (\n{pg_statement_text(sql)}\n) q "
        f"LIMIT {int(max_rows) + 1} OFFSET {int(offset)}) w "
        f"WHERE CASE WHEN {size} THEN {fail} ELSE true END"
    )


async def _fetch(conn: psycopg.AsyncConnection[Any], query: Query, max_bytes: int) -> Rows:
    cursor = conn.cursor()
    collector: RowCollector | None = None
    sql = bounded_sql(query.sql, max_rows=query.max_rows, offset=query.offset, max_bytes=max_bytes)
    # stream() forces the extended protocol, so the server accepts exactly one statement; one
    # row at a time, since a chunk of rows each just under the cap could be many times it.
    stream = cursor.stream(sql, dict(query.params) or None, size=1)
    async with aclosing(stream) as rows:  # type: ignore[type-var]
        async for row in rows:
            if collector is None:
                collector = _collector(cursor, query, max_bytes)
            if not collector.add(row):
                break
    return (collector or _collector(cursor, query, max_bytes)).result()


def _collector(cursor: psycopg.AsyncCursor[Any], query: Query, max_bytes: int) -> RowCollector:
    columns = [column.name for column in cursor.description or ()]
    return RowCollector(columns, max_rows=query.max_rows, max_bytes=max_bytes)


def _translate(exc: psycopg.Error, bound_ms: int, max_bytes: int, source: PgSource) -> Exception:
    detail = source.scrub(getattr(exc.diag, "message_primary", None) or str(exc))
    if isinstance(exc, pg_errors.InvalidTextRepresentation) and ROW_TOO_LARGE in detail:
        return row_too_large(max_bytes)
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


def postgres_factory(
    config: PostgresConfig, env: EnvLookup, policy: SQLPolicy = DEFAULT_POLICY
) -> PostgresDatabase:
    return PostgresDatabase(config, env, policy)
