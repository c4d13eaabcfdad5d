"""Database pools belong to the process: opened lazily, capped per source and in total, shared
by every run on the runtime loop. Against the real PostgreSQL and MariaDB on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psycopg
import pytest

from runtime import loop as runtime_loop
from runtime.databases import pool
from runtime.databases.base import PoolExhausted
from runtime.databases.limits import DBLimits
from runtime.databases.mysql import MySQLDatabase
from runtime.databases.pgpool import APPLICATION_NAME, source_key
from runtime.databases.pool import Pool, PoolSettings, close_pools, open_connections
from runtime.databases.postgres import PostgresDatabase
from runtime.source_configs import MySQLConfig, PostgresConfig
from tests.runtime.databases.helpers import ADMIN_OK, PG_DSN, query, run

Limits = Callable[..., DBLimits]


def pg_adapter(env: Any, **config: Any) -> PostgresDatabase:
    settings = {"connection_string_env": "PG_URL", "pool_size": 5, "pool_timeout": 60, **config}
    return PostgresDatabase(PostgresConfig(**settings), env, ADMIN_OK)


def application_name(db: PostgresDatabase) -> str:
    """The name its pool's connections carry in pg_stat_activity."""
    _conninfo, key = source_key(db._conninfo(), db.config)
    return f"{APPLICATION_NAME} {key[:12]}"


def server_connections(pg: psycopg.Connection[Any], name: str, *, settle_to: int = -1) -> int:
    """How many connections carry `name` on the server; with `settle_to`, wait (up to 5 s) for
    that count: a backend leaves pg_stat_activity a moment after its client closed it."""
    deadline = time.monotonic() + 5
    while True:
        row = pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()
        found = row[0] if row else 0
        if found == settle_to or settle_to < 0 or time.monotonic() > deadline:
            return int(found)
        time.sleep(0.02)


class Sampler:
    """Counts a pool's connections on the server every 20 ms while the block runs."""

    def __init__(self, application_name: str) -> None:
        self.name = application_name
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            while not self._stop.wait(0.02):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (self.name,),
                ).fetchone()
                self.most = max(self.most, row[0] if row else 0)


@pytest.mark.usefixtures("runtime_pools")
def test_thirty_concurrent_runs_open_at_most_the_ceiling_and_a_later_run_reuses_them(
    env: Any, limits: Limits
) -> None:
    limits(max_per_source=4, max_total=8, pool_timeout=60)
    config = {"pool_size": 10, "statement_timeout_ms": 30_001}
    sql = "SELECT pg_backend_pid() AS pid, pg_sleep(0.2)"

    def a_run() -> Any:
        # Each run builds its own adapter (RunContext.adapter); the pool is the process's.
        return runtime_loop.submit(pg_adapter(env, **config).select(query(sql)))

    with Sampler(application_name(pg_adapter(env, **config))) as sampler:
        runs = [a_run() for _ in range(30)]
        pids = {future.result(timeout=120).rows[0]["pid"] for future in runs}
    later = {a_run().result(timeout=60).rows[0]["pid"] for _ in range(3)}

    assert 2 <= sampler.most <= 4
    assert len(pids) <= 4
    assert later <= pids


def test_a_pool_opens_one_connection_when_asked_for_one(
    env: Any, pg: psycopg.Connection[Any]
) -> None:
    db = pg_adapter(env, pool_size=5, statement_timeout_ms=30_002)

    async def scenario() -> int:
        await db.select(query("SELECT 1"))
        return server_connections(pg, application_name(db))

    assert run(scenario()) == 1


def test_a_pool_size_of_100_is_clamped_to_the_operators_ceiling(env: Any, limits: Limits) -> None:
    limits(max_per_source=3, max_total=20)
    config = {"pool_size": 100, "max_overflow": 100, "statement_timeout_ms": 30_003}

    async def scenario() -> list[Any]:
        selects = [
            pg_adapter(env, **config).select(query("SELECT pg_sleep(0.2)")) for _ in range(12)
        ]
        return await asyncio.gather(*selects)

    with Sampler(application_name(pg_adapter(env, **config))) as sampler:
        results = run(scenario())

    assert len(results) == 12
    assert 1 <= sampler.most <= 3


def test_waiting_past_the_pool_timeout_fails_with_a_named_error(env: Any, limits: Limits) -> None:
    limits(max_per_source=1, pool_timeout=0.3)
    db = pg_adapter(env, pool_size=5, pool_timeout=30, statement_timeout_ms=30_004)

    async def scenario() -> PoolExhausted:
        slow = asyncio.ensure_future(db.select(query("SELECT pg_sleep(1.5)")))
        await asyncio.sleep(0)  # the slow query takes the only connection first
        try:
            with pytest.raises(PoolExhausted) as caught:
                await db.select(query("SELECT 1"))
        finally:
            await slow
        return caught.value

    error = run(scenario())

    assert (error.code, error.retryable) == ("db_pool_exhausted", True)
    assert "0.3 s" in error.message and "pool_size + max_overflow = 5" in error.message
    assert "at most 1 per source, AGENTFLOW_DB_POOL_MAX_PER_SOURCE" in error.message
    assert "ask the operator" in error.message  # the source already asks for more than 1


def test_the_total_ceiling_holds_across_sources_and_an_idle_connection_makes_room(
    env: Any, limits: Limits
) -> None:
    limits(max_per_source=5, max_total=2, pool_timeout=0.3)
    first, second = pg_adapter(env, statement_timeout_ms=30_005), pg_adapter(env)

    async def scenario() -> tuple[PoolExhausted, Any, int]:
        busy = [first.select(query("SELECT pg_sleep(1)")) for _ in range(2)]
        running = asyncio.ensure_future(asyncio.gather(*busy))
        await asyncio.sleep(0)
        try:
            with pytest.raises(PoolExhausted) as caught:
                await second.select(query("SELECT 1"))
        finally:
            await running
        # Both of `first`'s connections are idle now: `second` closes one to get a slot.
        rows = await second.select(query("SELECT 2 AS two"))
        return caught.value, rows.rows, open_connections()

    error, rows, opened = run(scenario())

    assert "2 database connections for all sources" in error.message
    assert "AGENTFLOW_DB_POOL_MAX_TOTAL" in error.message
    assert (rows, opened) == ([{"two": 2}], 2)


def test_a_source_waiting_for_a_slot_gets_one_when_another_sources_query_ends(
    env: Any, limits: Limits
) -> None:
    limits(max_per_source=5, max_total=2, pool_timeout=30)
    first, second = pg_adapter(env, statement_timeout_ms=30_010), pg_adapter(env)

    async def scenario() -> tuple[Any, int]:
        busy = [first.select(query("SELECT pg_sleep(0.5)")) for _ in range(2)]
        running = asyncio.ensure_future(asyncio.gather(*busy))
        await asyncio.sleep(0)
        rows = await second.select(query("SELECT 2 AS two"))  # waits, then closes an idle one
        await running
        return rows.rows, open_connections()

    assert run(scenario()) == ([{"two": 2}], 2)


@pytest.mark.usefixtures("runtime_pools")
def test_the_end_of_a_run_leaves_the_runtime_loops_pool_open_for_the_next(env: Any) -> None:
    config = {"pool_size": 1, "statement_timeout_ms": 30_006}
    sql = "SELECT pg_backend_pid() AS pid"

    first = runtime_loop.run(pg_adapter(env, **config).select(query(sql)))
    runtime_loop.run(close_pools())  # as RunContext.aclose() does at the end of every run
    second = runtime_loop.run(pg_adapter(env, **config).select(query(sql)))

    assert second.rows == first.rows


def test_close_pools_closes_another_loops_pools(env: Any, pg: psycopg.Connection[Any]) -> None:
    db = pg_adapter(env, statement_timeout_ms=30_007)

    run(db.select(query("SELECT 1")))  # helpers.run closes the loop's pools, as the CLI does

    assert server_connections(pg, application_name(db), settle_to=0) == 0


def test_a_sources_idle_connections_and_then_its_pool_are_closed_after_the_idle_timeout(
    env: Any, pg: psycopg.Connection[Any], limits: Limits
) -> None:
    db = pg_adapter(env, statement_timeout_ms=30_011)
    name = application_name(db)

    async def scenario() -> list[int]:
        await db.select(query("SELECT 1"))
        seen = [server_connections(pg, name)]
        limits(idle_timeout=0.05)
        await asyncio.sleep(0.2)  # idle for longer than that (its reset ran meanwhile)
        pool._sweep(asyncio.get_running_loop())  # what the loop's timer runs
        return [*seen, open_connections(), server_connections(pg, name, settle_to=0)]

    assert run(scenario()) == [1, 0, 0]


# --- the pool itself, with a fake driver and clock ----------------------------------------------


class FakeDriver:
    def __init__(self) -> None:
        self.opened: list[object] = []
        self.closed: list[object] = []

    async def open(self) -> object:
        self.opened.append(conn := object())
        return conn


def test_idle_connections_close_after_the_idle_timeout_and_then_the_pool_retires(
    limits: Limits,
) -> None:
    limits(idle_timeout=60)
    now, driver = [0.0], FakeDriver()

    async def scenario() -> list[Any]:
        pool: Pool[object] = Pool(
            PoolSettings("postgres", 2, 2, 1.0, 2),
            open=driver.open,
            close=driver.closed.append,
            clock=lambda: now[0],
        )
        conn, new = await pool.acquire()
        pool.release(conn, reusable=True)
        again, new_again = await pool.acquire()
        pool.release(again, reusable=True)
        seen: list[object] = [new, again is conn and not new_again, pool.retire_if_unused()]
        now[0] = 59
        seen.append(pool.sweep())
        now[0] = 61
        seen += [pool.sweep(), pool.retire_if_unused(), driver.closed == [conn]]
        await pool.close()
        return seen

    assert run(scenario()) == [True, True, False, 0, 1, True, True]
    assert len(driver.opened) == 1


def test_returned_connections_past_pool_size_are_closed(limits: Limits) -> None:
    limits(max_per_source=3)
    driver = FakeDriver()

    async def scenario() -> tuple[int, int]:
        pool: Pool[object] = Pool(
            PoolSettings("postgres", 3, 1, 1.0, 3), open=driver.open, close=driver.closed.append
        )
        held = [(await pool.acquire())[0] for _ in range(3)]
        for conn in held:
            pool.release(conn, reusable=True)
        kept = pool.size
        await pool.close()
        return kept, len(driver.closed)

    assert run(scenario()) == (1, 3)


# --- MySQL ---------------------------------------------------------------------------------------


def my_adapter(env: Any, **config: Any) -> MySQLDatabase:
    settings = MySQLConfig(**{"connection_string_env": "MYSQL_URL", **config})
    return MySQLDatabase(settings, env, ADMIN_OK)


def test_a_mysql_pool_size_of_100_is_clamped_to_the_operators_ceiling(
    env: Any, limits: Limits
) -> None:
    limits(max_per_source=2, max_total=20)
    config = {"pool_size": 100, "statement_timeout_ms": 30_008}
    sql = "SELECT CONNECTION_ID() AS id, SLEEP(0.2) AS s"

    async def scenario() -> tuple[set[int], int]:
        selects = [my_adapter(env, **config).select(query(sql)) for _ in range(6)]
        results = await asyncio.gather(*selects)
        return {r.rows[0]["id"] for r in results}, open_connections()

    ids, opened = run(scenario())

    assert len(ids) <= 2 and opened <= 2


def test_a_mysql_wait_past_the_pool_timeout_fails_with_a_named_error(
    env: Any, limits: Limits
) -> None:
    limits(max_per_source=1, pool_timeout=0.3)
    db = my_adapter(env, pool_size=5, statement_timeout_ms=30_009)

    async def scenario() -> PoolExhausted:
        slow = asyncio.ensure_future(db.select(query("SELECT SLEEP(1.5) AS s")))
        await asyncio.sleep(0)
        try:
            with pytest.raises(PoolExhausted) as caught:
                await db.select(query("SELECT 1 AS one"))
        finally:
            await slow
        return caught.value

    error = run(scenario())

    assert error.code == "db_pool_exhausted" and "mysql source" in error.message
    assert "pool_size = 5" in error.message
