"""The postgres adapter against the real PostgreSQL on 127.0.0.1:5432 (database `test`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from runtime.databases import postgres
from runtime.databases.base import ConnectionFailed, QueryTimeout, ReadOnlyViolationError
from runtime.databases.postgres import PostgresDatabase
from runtime.databases.probe import probe
from runtime.databases.sqlcheck import PgChecked
from runtime.errors import NodeError
from runtime.source_configs import PostgresConfig
from tests.runtime.databases.helpers import ADMIN_OK, query, run, unique

REFUSED = ("read_only_violation", "db_function_not_allowed")
UNCHECKED = PgChecked(frozenset())
"""What a switched-off early check lets through: everything."""

WRITES = [
    "DELETE FROM {t}",
    "INSERT INTO {t} VALUES (99, 'new')",
    "UPDATE {t} SET name = 'changed'",
    "COMMIT; DELETE FROM {t}",
    "SET TRANSACTION READ WRITE; DELETE FROM {t}",
    "SELECT * FROM {t} FOR UPDATE",
    "WITH d AS (DELETE FROM {t} RETURNING *) SELECT * FROM d",
    "SELECT {t}_f()",
    "SELECT 1; DROP TABLE {t}",
    "CREATE TABLE {t}_new (id int)",
    "COPY {t} FROM STDIN",
    "SET ROLE postgres",
    "SET default_transaction_read_only = off; DELETE FROM {t}",
    "SELECT * INTO {t}_copy FROM {t}",
    "TRUNCATE {t}",
    "DROP TABLE {t}",
    # procedural code, sequences, large objects
    "DO $$ BEGIN DELETE FROM {t}; END $$",
    "CALL {t}_p()",
    "SELECT nextval('{t}_seq')",
    "EXPLAIN ANALYZE DELETE FROM {t}",
    # data-modifying CTEs and locking reads
    "WITH u AS (UPDATE {t} SET name = 'x' RETURNING 1) SELECT * FROM u",
    "WITH i AS (INSERT INTO {t} VALUES (7, 'x') RETURNING 1) SELECT 1",
    "SELECT * FROM {t} FOR SHARE",
    "SELECT * FROM {t} FOR NO KEY UPDATE",
    "LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE",
    # transaction control and session settings, stacked
    "BEGIN; DELETE FROM {t}; COMMIT",
    "ROLLBACK; DELETE FROM {t}",
    "END; DELETE FROM {t}",
    "SAVEPOINT s; DELETE FROM {t}",
    "RESET ALL; DELETE FROM {t}",
    "PREPARE p AS DELETE FROM {t}; EXECUTE p",
    "SELECT set_config('default_transaction_read_only', 'off', false); DELETE FROM {t}",
    # DDL and privileges
    "ALTER TABLE {t} ADD COLUMN z int",
    "CREATE INDEX ON {t} (id)",
    "GRANT ALL ON {t} TO PUBLIC",
    "VACUUM {t}",
    # comment, case and quoting tricks
    "/* a comment */ DELETE FROM {t}",
    "-- a comment\nDELETE FROM {t}",
    "DeLeTe FROM {t}",
    'DELETE FROM "{t}"',
    "SELECT 1 /*; */; DELETE FROM {t}",
    "SELECT $q$;$q$; DELETE FROM {t}",
]

# Escapes that do not write, which the database alone would let through (for a superuser):
# the early check refuses them.
ESCAPES = [
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT pg_advisory_lock(42)",
    "SELECT set_config('statement_timeout', '0', false)",
    "SELECT pg_terminate_backend(pg_backend_pid())",
    "SELECT dblink_exec('dbname=test', 'DELETE FROM {t}')",
    "SELECT lo_import('/etc/hostname')",
]


def adapter(env: Any, **config: Any) -> PostgresDatabase:
    settings = {"connection_string_env": "PG_URL", "pool_size": 1, **config}
    return PostgresDatabase(PostgresConfig(**settings), env, ADMIN_OK)


def count(pg: psycopg.Connection[Any], table: str) -> int:
    row = pg.execute(f"SELECT count(*), string_agg(name, ',' ORDER BY id) FROM {table}").fetchone()
    assert row is not None and row[1] == "row 1,row 2,row 3,row 4,row 5"
    return int(row[0])


@pytest.fixture
def side_effect_function(pg: psycopg.Connection[Any], pg_table: str) -> Iterator[str]:
    """A function that inserts into the table (it parses as a harmless SELECT), a procedure
    that deletes from it, and a sequence."""
    pg.execute(
        f"CREATE FUNCTION {pg_table}_f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO {pg_table} VALUES (100, 'sneaky'); RETURN 1; END $$"
    )
    pg.execute(
        f"CREATE PROCEDURE {pg_table}_p() LANGUAGE plpgsql AS $$ BEGIN "
        f"DELETE FROM {pg_table}; END $$"
    )
    pg.execute(f"CREATE SEQUENCE {pg_table}_seq")
    yield f"{pg_table}_f"
    pg.execute(f"DROP SEQUENCE IF EXISTS {pg_table}_seq")
    pg.execute(f"DROP PROCEDURE IF EXISTS {pg_table}_p()")


def test_it_returns_columns_and_rows_as_objects_with_json_safe_values(env: Any) -> None:
    sql = (
        "SELECT 1 AS n, 2.50::numeric AS price, '2026-01-02'::date AS day, "
        "'\\x0102'::bytea AS raw, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, "
        "'{\"k\": [1]}'::jsonb AS doc"
    )
    rows = run(adapter(env).select(query(sql)))

    assert rows.as_result() == {
        "columns": ["n", "price", "day", "raw", "id", "doc"],
        "rows": [
            {
                "n": 1,
                "price": 2.5,
                "day": "2026-01-02",
                "raw": "AQI=",
                "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "doc": {"k": [1]},
            }
        ],
        "row_count": 1,
        "truncated": False,
    }


def test_it_binds_params_so_a_quote_is_just_data(
    env: Any, pg: psycopg.Connection[Any], pg_table: str
) -> None:
    evil = f"x'; DROP TABLE {pg_table}; --"
    sql = f"SELECT %(v)s AS v, count(*) AS n FROM {pg_table} WHERE name <> %(v)s"
    rows = run(adapter(env).select(query(sql, {"v": evil})))

    assert rows.rows == [{"v": evil, "n": 5}]
    assert count(pg, pg_table) == 5


def test_it_pages_and_marks_a_longer_result_truncated(env: Any, pg_table: str) -> None:
    sql = f"SELECT id FROM {pg_table} ORDER BY id"
    db = adapter(env)

    second_page = run(db.select(query(sql, max_rows=2, offset=2)))
    last_page = run(db.select(query(sql, max_rows=2, offset=4)))

    assert (second_page.rows, second_page.truncated) == ([{"id": 3}, {"id": 4}], True)
    assert (last_page.rows, last_page.truncated) == ([{"id": 5}], False)


def test_it_stops_reading_at_the_byte_cap(env: Any) -> None:
    sql = "SELECT g, repeat('x', 1000000) AS blob FROM generate_series(1, 1000) g"
    started = time.monotonic()
    rows = run(adapter(env).select(query(sql, max_rows=1000)))

    assert rows.truncated and 1 <= len(rows.rows) <= 5
    assert time.monotonic() - started < 5


@pytest.mark.usefixtures("side_effect_function")
@pytest.mark.parametrize("write", WRITES)
def test_every_write_fails_as_a_read_only_violation_and_changes_nothing(
    env: Any, pg: psycopg.Connection[Any], pg_table: str, write: str
) -> None:
    with pytest.raises(ReadOnlyViolationError) as caught:
        run(adapter(env).select(query(write.format(t=pg_table))))

    # A function off the allow-list is refused as a read-only violation of its own code.
    assert caught.value.code in REFUSED and not caught.value.retryable
    assert count(pg, pg_table) == 5
    assert pg.execute("SELECT to_regclass(%s)", (f"{pg_table}_new",)).fetchone() == (None,)


@pytest.mark.parametrize("escape", ESCAPES)
def test_escapes_that_do_not_write_are_refused_early(
    env: Any, pg: psycopg.Connection[Any], pg_table: str, escape: str
) -> None:
    with pytest.raises(NodeError) as caught:
        run(adapter(env).select(query(escape.format(t=pg_table))))

    assert caught.value.code in (*REFUSED, "db_error")
    assert count(pg, pg_table) == 5


def test_without_the_parser_a_large_object_import_is_rolled_back(
    env: Any, pg: psycopg.Connection[Any], monkeypatch: Any
) -> None:
    monkeypatch.setattr(postgres, "check_postgres", lambda *args: UNCHECKED)
    objects = "SELECT count(*) FROM pg_largeobject_metadata"
    before = pg.execute(objects).fetchone()
    with contextlib.suppress(NodeError):
        run(adapter(env).select(query("SELECT lo_import('/etc/hostname')")))
    assert pg.execute(objects).fetchone() == before  # the always-ROLLBACK layer undid it


def test_the_catalogue_is_at_least_thirty_attempts() -> None:
    assert len(WRITES) + len(ESCAPES) >= 30


@pytest.mark.usefixtures("side_effect_function")
@pytest.mark.parametrize("write", WRITES)
def test_without_the_parser_the_database_still_refuses_every_write(
    env: Any, pg: psycopg.Connection[Any], pg_table: str, write: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(postgres, "check_postgres", lambda *args: UNCHECKED)

    with pytest.raises(NodeError):
        run(adapter(env).select(query(write.format(t=pg_table))))

    assert count(pg, pg_table) == 5
    assert pg.execute("SELECT to_regclass(%s)", (f"{pg_table}_new",)).fetchone() == (None,)


def test_a_slow_query_times_out_within_a_second_and_leaves_nothing_running(
    env: Any, pg: psycopg.Connection[Any]
) -> None:
    marker = unique("slow")
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as caught:
        run(adapter(env).select(query(f"SELECT pg_sleep(60) AS {marker}", timeout_ms=300)))

    assert time.monotonic() - started < 20  # stopped: the query alone would take 60 s
    assert caught.value.code == "timeout"
    still_running = pg.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
        (f"%{marker}%",),
    ).fetchone()
    assert still_running == (0,)


def test_the_source_timeout_caps_the_nodes_timeout(env: Any) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        run(
            adapter(env, statement_timeout_ms=200).select(
                query("SELECT pg_sleep(60)", timeout_ms=60_000)
            )
        )
    assert time.monotonic() - started < 20  # the source's 200 ms, not the node's 60 s


def test_a_dead_server_fails_clearly_and_retryably_without_the_password() -> None:
    env = {"PG_URL": "postgresql://reader:hunter2secret@127.0.0.1:1/test"}.get
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        run(adapter(env, pool_timeout=10).select(query("SELECT 1")))

    assert time.monotonic() - started < 8  # the first refusal, not the 10 s pool_timeout
    assert caught.value.retryable
    assert "postgres source" in caught.value.message and "refused" in caught.value.message
    assert "hunter2secret" not in caught.value.message


def test_the_pool_recovers_when_its_connections_are_killed(
    env: Any, pg: psycopg.Connection[Any]
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        db = adapter(env, pool_size=1)
        pid = (await db.select(query("SELECT pg_backend_pid() AS pid"))).rows[0]["pid"]
        pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return (await db.select(query("SELECT 2 AS two"))).rows

    assert run(scenario()) == [{"two": 2}]


def test_a_connection_is_rolled_back_and_reset_before_reuse(
    env: Any, pg: psycopg.Connection[Any]
) -> None:
    async def scenario() -> tuple[Any, ...] | None:
        pid = (await adapter(env).select(query("SELECT pg_backend_pid() AS p"))).rows[0]["p"]
        for _ in range(50):  # the pool resets a returned connection in a background task
            row = pg.execute(
                "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row == ("idle", "DISCARD ALL"):
                break
            await asyncio.sleep(0.02)
        return row

    assert run(scenario()) == ("idle", "DISCARD ALL")


def test_the_probe_warns_about_a_superuser(env: Any) -> None:
    report = run(probe(adapter(env)))

    assert report.ok
    assert any("superuser" in warning for warning in report.warnings)


@pytest.fixture
def reader_role(pg: psycopg.Connection[Any], pg_table: str) -> Iterator[str]:
    role = unique("af_reader")
    pg.execute(f"CREATE ROLE {role} LOGIN")
    pg.execute(f"GRANT SELECT ON {pg_table} TO {role}")
    yield role
    pg.execute(f"DROP OWNED BY {role}")
    pg.execute(f"DROP ROLE {role}")


def test_the_probe_is_quiet_for_a_select_only_role(reader_role: str, pg_table: str) -> None:
    env = {"PG_URL": f"postgresql://{reader_role}@127.0.0.1:5432/test"}.get
    db = adapter(env)

    report = run(probe(db))
    rows = run(db.select(query(f"SELECT count(*) AS n FROM {pg_table}")))

    assert (report.ok, report.warnings) == (True, [])
    assert rows.rows == [{"n": 5}]


def test_the_probe_warns_about_a_role_that_can_write(
    pg: psycopg.Connection[Any], reader_role: str, pg_table: str
) -> None:
    pg.execute(f"GRANT INSERT ON {pg_table} TO {reader_role}")
    env = {"PG_URL": f"postgresql://{reader_role}@127.0.0.1:5432/test"}.get

    report = run(probe(adapter(env)))

    assert report.ok
    assert any(pg_table in warning for warning in report.warnings)


def test_a_pooled_connection_serves_many_queries_in_a_row(env: Any, pg_table: str) -> None:
    """DISCARD ALL between uses must not break psycopg's prepared-statement cache (it did,
    from the sixth query on one connection)."""
    db = adapter(env, pool_size=1)

    async def many() -> list[int]:
        found = []
        for _ in range(12):
            rows = await db.select(query(f"SELECT count(*) AS n FROM {pg_table}"))
            found.append(rows.rows[0]["n"])
        return found

    assert run(many()) == [5] * 12
