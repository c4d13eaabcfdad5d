"""The operator's caps on what one db node reads: rows, bytes, and one row's size, enforced
while reading (a row too large is never read whole)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runtime.context import RunContext
from runtime.databases import database_factories
from runtime.databases.base import RowTooLarge
from runtime.databases.limits import DBLimits, configure
from runtime.databases.mysql import MySQLDatabase
from runtime.databases.postgres import PostgresDatabase
from runtime.databases.sqlite import SQLiteDatabase
from runtime.node_metadata import DBMetadata
from runtime.nodes.db import DBNode
from runtime.source_configs import MySQLConfig, PostgresConfig, SQLiteConfig
from runtime.spec import SourceSpec
from tests.runtime.databases.helpers import ADMIN_OK, query, run, unique

Limits = Callable[..., DBLimits]


def pg_adapter(env: Any, **config: Any) -> PostgresDatabase:
    return PostgresDatabase(PostgresConfig(connection_string_env="PG_URL", **config), env, ADMIN_OK)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_200_mb_row_fails_on_the_server_and_never_reaches_the_process(env: Any) -> None:
    db = pg_adapter(env, statement_timeout_ms=120_000)

    async def scenario() -> tuple[RowTooLarge, float]:
        await db.select(query("SELECT 1"))  # the connection and the driver's code, warm
        before = rss_mb()
        with pytest.raises(RowTooLarge) as caught:
            await db.select(query("SELECT repeat('x', 200000000) AS blob"))
        return caught.value, rss_mb() - before

    error, grew = run(scenario())

    assert error.code == "db_row_too_large" and not error.retryable
    assert "5000000 bytes" in error.message and "AGENTFLOW_DB_MAX_BYTES" in error.message
    assert grew < 50


@pytest.fixture
def toasted(pg: psycopg.Connection[Any]) -> Iterator[str]:
    """A table holding one 1 MB value that compresses to a few kB."""
    name = unique("af_big")
    pg.execute(f"CREATE TABLE {name} (id int, body text)")
    pg.execute(f"INSERT INTO {name} VALUES (1, repeat('x', 1000000))")
    yield name
    pg.execute(f"DROP TABLE {name}")


def test_a_compressed_value_is_measured_as_sent_not_as_stored(
    env: Any, pg: psycopg.Connection[Any], toasted: str, limits: Limits
) -> None:
    limits(max_bytes=100_000)
    stored = pg.execute(f"SELECT pg_column_size(body) FROM {toasted}").fetchone()
    assert stored is not None and stored[0] < 100_000

    # A column named `w` as well: the guard measures the whole row, not that column.
    with pytest.raises(RowTooLarge) as caught:
        run(pg_adapter(env).select(query(f"SELECT id AS w, body FROM {toasted}")))
    assert run(pg_adapter(env).select(query(f"SELECT id FROM {toasted}"))).rows == [{"id": 1}]
    # The server refused to send it (the client-side check would have raised no cause).
    assert isinstance(caught.value.__cause__, psycopg.errors.InvalidTextRepresentation)


@pytest.mark.parametrize(
    ("sql", "columns", "rows"),
    [
        ("SELECT g FROM generate_series(1, 3) g ORDER BY g DESC", ["g"], [[3], [2], [1]]),
        (
            "WITH x AS (SELECT 2 AS a UNION ALL SELECT 1) SELECT a FROM x ORDER BY a",
            ["a"],
            [[1], [2]],
        ),
        ("SELECT 2 AS n UNION SELECT 1 ORDER BY 1", ["n"], [[1], [2]]),
        ("SELECT 1 AS a, 'b' AS a, 3", ["a", "a", "?column?"], [[1, "b", 3]]),
        ("SELECT 1 AS n; -- a trailing comment", ["n"], [[1]]),
        ("SELECT 1 AS n -- a comment, no line break", ["n"], [[1]]),
        ("VALUES (1, 'x')", ["column1", "column2"], [[1, "x"]]),
        ("SELECT * FROM (SELECT 1 AS q) q", ["q"], [[1]]),
        ("SELECT 1 AS w, 2 AS q", ["w", "q"], [[1, 2]]),
    ],
)
def test_the_server_side_guard_keeps_the_querys_columns_and_order(
    env: Any, sql: str, columns: list[str], rows: list[list[Any]]
) -> None:
    result = run(pg_adapter(env).select(query(sql)))

    assert result.columns == columns
    assert [list(row.values()) for row in result.rows] == [
        list(dict(zip(columns, row, strict=True)).values()) for row in rows
    ]


def test_the_operators_row_cap_bounds_a_nodes_max_rows(env: Any, limits: Limits) -> None:
    limits(max_rows=3)
    source = SourceSpec.model_validate(
        {"id": "pg", "kind": "postgres", "config": {"connection_string_env": "PG_URL"}}
    )
    meta = DBMetadata.model_validate(
        {"source": "pg", "query": "SELECT g FROM generate_series(1, 10) g", "max_rows": 100_000}
    )
    node = DBNode("rows", meta, {"pg": source})
    ctx = RunContext(env=env, providers=database_factories(Path("/nonexistent"), policy=ADMIN_OK))

    out = run(node.run({}, ctx))

    assert (out.result["row_count"], out.result["truncated"]) == (3, True)


def test_the_byte_cap_cuts_a_long_result_short_rather_than_failing(
    env: Any, limits: Limits
) -> None:
    limits(max_bytes=10_000)
    sql = "SELECT g, repeat('x', 1000) AS blob FROM generate_series(1, 100) g"

    rows = run(pg_adapter(env).select(query(sql, max_rows=100)))

    assert rows.truncated and 5 <= len(rows.rows) < 10


def test_a_mysql_row_past_the_cap_is_refused_and_the_source_still_serves(
    env: Any, limits: Limits
) -> None:
    limits(max_bytes=100_000)
    db = MySQLDatabase(MySQLConfig(connection_string_env="MYSQL_URL", pool_size=1), env, ADMIN_OK)

    async def scenario() -> tuple[RowTooLarge, Any]:
        with pytest.raises(RowTooLarge) as caught:
            await db.select(query("SELECT 1 AS id, REPEAT('x', 1000000) AS body"))
        return caught.value, (await db.select(query("SELECT 2 AS two"))).rows

    error, rows = run(scenario())

    assert error.code == "db_row_too_large" and rows == [{"two": 2}]


def test_a_sqlite_value_past_the_cap_is_refused(tmp_path: Path, limits: Limits) -> None:
    limits(max_bytes=1000)
    sqlite3.connect(tmp_path / "demo.db").close()
    db = SQLiteDatabase(SQLiteConfig(path="demo.db"), tmp_path)

    with pytest.raises(RowTooLarge):
        run(db.select(query("SELECT zeroblob(2000) AS blob")))


def test_configure_refuses_a_ceiling_that_is_not_positive(limits: Limits) -> None:
    with pytest.raises(ValueError, match="AGENTFLOW_DB_POOL_MAX_TOTAL must be a positive"):
        configure(max_total=0)
