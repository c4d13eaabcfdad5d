"""MySQL and MariaDB sources: one SELECT in a read-only transaction, over PyMySQL and a pool.

The layers:
1. The text is read with MySQL's own lexical rules, then sqlglot's MySQL grammar: one plain
   SELECT calling only allowed functions, with no executable comment, or an early error
   (runtime/databases/sqlcheck.py). Once per source, the user's grants are read: FILE, SUPER
   or ALL PRIVILEGES on *.* are refused unless the operator allows them.
2. CLIENT.MULTI_STATEMENTS is never set, so the server runs exactly one statement per call.
3. `SET SESSION TRANSACTION READ ONLY` and `START TRANSACTION READ ONLY`, the server's
   statement timeout (`max_statement_time` on MariaDB, `max_execution_time` on MySQL) and lock
   timeouts; the transaction is always rolled back.
4. Rows are read unbuffered and stop at the row or byte cap; a row larger than the byte cap
   is refused from its packet header, before it is read (`CappedConnection`).
5. A client deadline (bound + grace) sends `KILL QUERY` from a second connection.
6. `COM_RESET_CONNECTION` resets each connection before it goes back to the pool.

PyMySQL escapes values on the client and puts them in the text: `NO_BACKSLASH_ESCAPES` is
cleared from the session's sql_mode so that its escaping stays correct.
"""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from runtime.databases.base import (
    ConnectionFailed,
    DatabaseError,
    Query,
    QueryTimeout,
    ReadOnlyViolationError,
    Rows,
)
from runtime.databases.functions import DEFAULT_POLICY, SQLPolicy
from runtime.databases.limits import db_limits
from runtime.databases.mysqlpool import MySQLSource, abandon, close_quietly, source_for
from runtime.databases.roles import mysql_role_facts
from runtime.databases.rows import RowCollector
from runtime.databases.sqlcheck import check_mysql
from runtime.providers.base import EnvLookup, require_env
from runtime.source_configs import MySQLConfig

CLIENT_GRACE_S = 0.5
COM_RESET_CONNECTION = 0x1F
READ_ONLY_ERRORS = frozenset({1792, 1290, 1142, 1227, 1044, 1045})
"""ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, ER_OPTION_PREVENTS_STATEMENT, access denied."""
TIMEOUT_ERRORS = frozenset({1317, 1969, 3024, 1205, 1028})
"""Interrupted (KILL QUERY), MariaDB and MySQL statement timeouts, lock wait timeouts."""


@dataclass
class _Running:
    """One query in flight: the deadline side may kill it only while the worker still holds it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    thread_id: int | None = None
    killed: bool = False


class MySQLDatabase:
    kind = "mysql"

    def __init__(
        self, config: MySQLConfig, env: EnvLookup, policy: SQLPolicy = DEFAULT_POLICY
    ) -> None:
        self.config = config
        self.env = env
        self.policy = policy

    async def select(self, query: Query) -> Rows:
        check_mysql(query.sql, self.policy, bool(query.params))
        return await self._run(partial(self._select, gated=True), query)

    async def run_admin(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one trusted statement of ours (the source test), not a node's."""
        query = Query(sql, {}, max_rows=1000, timeout_ms=self.config.statement_timeout_ms)
        rows = await self._run(partial(self._select, gated=False), query)
        return [tuple(row.values()) for row in rows.rows]

    async def _run(self, work: Any, query: Query) -> Rows:
        source, bound_ms, running = self._source(), self._bound_ms(query), _Running()
        conn, new = await source.pool.acquire()
        # Once started, the worker gives the connection back itself, however this side ends.
        task = asyncio.ensure_future(
            asyncio.to_thread(work, source, conn, new, query, bound_ms, running)
        )
        try:
            done, _ = await asyncio.wait({task}, timeout=bound_ms / 1000 + CLIENT_GRACE_S)
        except asyncio.CancelledError:
            await asyncio.to_thread(_kill, source, running)
            raise
        if task in done:
            return task.result()  # type: ignore[no-any-return]
        await asyncio.to_thread(_kill, source, running)
        task.add_done_callback(lambda t: t.exception())  # the worker's error is ours below
        raise QueryTimeout(_timeout_message(bound_ms))

    def _select(
        self,
        source: MySQLSource,
        conn: Any,
        new: bool,
        query: Query,
        bound_ms: int,
        running: _Running,
        *,
        gated: bool,
    ) -> Rows:
        import pymysql

        reusable = False
        try:
            if not new:
                conn = _alive(conn, source)
            with running.lock:
                running.thread_id = conn.thread_id()
            if gated:
                _gate(conn, source, self.policy)
            _begin_read_only(conn, source, bound_ms)
            rows, drained = _fetch(conn, query, db_limits().max_bytes)
            if not drained:
                # The rest of the result is still on its way, and PyMySQL would read all of it
                # before sending anything else: drop the connection (the server rolls back).
                abandon(conn)
                return rows
            conn.rollback()
            reusable = _reset(conn)
            return rows
        except pymysql.err.MySQLError as exc:
            raise _translate(exc, bound_ms) from exc
        except (KeyError, TypeError, ValueError) as exc:  # PyMySQL formats `%(name)s` itself
            raise DatabaseError(
                f"The query's parameters do not match its placeholders ({exc!r}); "
                "write a literal % as %% when the query has params."
            ) from exc
        finally:
            with running.lock:
                running.thread_id = None
                reusable = reusable and not running.killed
            source.pool.release(conn, reusable=reusable)

    def _source(self) -> MySQLSource:
        env_name = self.config.connection_string_env
        dsn = require_env(self.env, env_name, source_kind=self.kind)
        return source_for(dsn, env_name, self.config)

    def _bound_ms(self, query: Query) -> int:
        limit = self.config.statement_timeout_ms
        return min(query.timeout_ms, limit) if query.timeout_ms else limit


def _gate(conn: Any, source: MySQLSource, policy: SQLPolicy) -> None:
    """Refuse a user with FILE, SUPER or ALL PRIVILEGES on *.* unless the operator allows it;
    its grants are read once per source (a refusal is asked about again next time)."""
    facts = source.facts
    if facts is None:
        with conn.cursor() as cursor:
            cursor.execute("SHOW GRANTS")
            grants = [str(row[0]) for row in cursor.fetchall()]
        facts = mysql_role_facts(grants, str(source.params.get("user") or "?"))
    facts.check("mysql", policy.allow_privileged_roles)
    source.facts = facts


def _alive(conn: Any, source: MySQLSource) -> Any:
    """The idle connection if it still answers, else a new one in its place."""
    try:
        conn.ping(reconnect=False)
    except Exception:
        close_quietly(conn)
        return source.connect()
    return conn


def _begin_read_only(conn: Any, source: MySQLSource, bound_ms: int) -> None:
    seconds = max(1, math.ceil(bound_ms / 1000))
    if source.server and source.server.mariadb:
        timeout = f"max_statement_time = {bound_ms / 1000:.3f}"
    else:
        timeout = f"max_execution_time = {int(bound_ms)}"
    with conn.cursor() as cursor:
        for statement in (
            "SET SESSION TRANSACTION READ ONLY",
            f"SET SESSION {timeout}",
            f"SET SESSION innodb_lock_wait_timeout = {seconds}",
            f"SET SESSION lock_wait_timeout = {seconds}",
            "SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
            "START TRANSACTION READ ONLY",
        ):
            cursor.execute(statement)


def _fetch(conn: Any, query: Query, max_bytes: int) -> tuple[Rows, bool]:
    """The rows, and whether the result was read to its end (else the connection is dropped)."""
    import pymysql.cursors

    cursor = conn.cursor(pymysql.cursors.SSCursor)
    conn.packet_cap = max_bytes
    try:
        cursor.execute(query.sql, dict(query.params) or None)
        collector = RowCollector(
            [d[0] for d in cursor.description or ()],
            max_rows=query.max_rows,
            offset=query.offset,
            max_bytes=max_bytes,
        )
        while (row := cursor.fetchone()) is not None:
            if not collector.add(row):
                return collector.result(), False
        return collector.result(), True
    finally:
        conn.packet_cap = None


def _reset(conn: Any) -> bool:
    """Reset the session to its state after login (variables, temporary tables, locks)."""
    try:
        conn._execute_command(COM_RESET_CONNECTION, "")
        conn._read_ok_packet()
        conn.autocommit(True)
    except Exception:
        return False
    return True


def _kill(source: MySQLSource, running: _Running) -> None:
    with running.lock:
        if running.thread_id is None:
            return
        running.killed = True
        thread_id = running.thread_id
    conn = source.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("KILL QUERY %s", (thread_id,))
    except Exception:
        pass  # the query ended on its own meanwhile
    finally:
        close_quietly(conn)


def _translate(exc: Exception, bound_ms: int) -> Exception:
    number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    detail = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if number in READ_ONLY_ERRORS:
        return ReadOnlyViolationError(f"The db node only reads; the server refused: {detail}.")
    if number in TIMEOUT_ERRORS:
        return QueryTimeout(_timeout_message(bound_ms))
    if number is None or number >= 2000:  # client-side: connection lost, bad packet
        return ConnectionFailed(f"The connection to the mysql source failed: {detail}.")
    return DatabaseError(f"The server refused the query: {detail}.")


def _timeout_message(bound_ms: int) -> str:
    return f"The query ran past its timeout ({bound_ms} ms) and was stopped on the server."


def mysql_factory(
    config: MySQLConfig, env: EnvLookup, policy: SQLPolicy = DEFAULT_POLICY
) -> MySQLDatabase:
    return MySQLDatabase(config, env, policy)
