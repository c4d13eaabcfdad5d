"""The mysql adapter against the real MariaDB/MySQL on 127.0.0.1:3306 (database `test`)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest

from runtime.databases import mysql
from runtime.databases.base import ConnectionFailed, QueryTimeout, ReadOnlyViolationError
from runtime.databases.mysql import MySQLDatabase
from runtime.databases.probe import probe
from runtime.errors import NodeError
from runtime.source_configs import MySQLConfig
from tests.runtime.databases.helpers import ADMIN_OK, query, run, unique

WRITES = [
    "DELETE FROM {t}",
    "INSERT INTO {t} VALUES (99, 'new')",
    "UPDATE {t} SET name = 'changed'",
    "COMMIT; DELETE FROM {t}",
    "SET TRANSACTION READ WRITE; DELETE FROM {t}",
    "SELECT * FROM {t} FOR UPDATE",
    "SELECT 1; DROP TABLE {t}",
    "CREATE TABLE {t}_new (id int)",
    "REPLACE INTO {t} VALUES (1, 'replaced')",
    "TRUNCATE TABLE {t}",
    "DROP TABLE {t}",
    "INSERT INTO {t} VALUES (1, 'x') ON DUPLICATE KEY UPDATE name = 'changed'",
    "DELETE FROM {t} WHERE id > 0 LIMIT 5",
    "UPDATE {t} SET name = 'changed' ORDER BY id LIMIT 1",
    "ALTER TABLE {t} ADD COLUMN z int",
    "CREATE INDEX {t}_i ON {t} (name)",
    "RENAME TABLE {t} TO {t}_new",
    "LOCK TABLES {t} WRITE",
    "SELECT * FROM {t} LOCK IN SHARE MODE",
    "SELECT * FROM {t} INTO OUTFILE '/tmp/{t}.out'",
    "LOAD DATA INFILE '/etc/hostname' INTO TABLE {t}",
    "START TRANSACTION READ WRITE; DELETE FROM {t}",
    "ROLLBACK; DELETE FROM {t}",
    "SET autocommit = 1; DELETE FROM {t}",
    "SET SESSION TRANSACTION READ WRITE; DELETE FROM {t}",
    "/* a comment */ DELETE FROM {t}",
    "-- a comment\nDELETE FROM {t}",
    "DeLeTe FROM {t}",
    "DELETE FROM `{t}`",
    "SELECT 1 /*; */; DELETE FROM {t}",
    "/*!50000 DELETE FROM {t} */",
]

# Escapes that do not write (or write outside the table): refused early.
ESCAPES = [
    "SELECT LOAD_FILE('/etc/hostname')",
    "SELECT GET_LOCK('agentflow', 1)",
    "SELECT @x := 1",
    "SELECT SLEEP(0) FROM {t} WHERE (@n := 1)",
    "DO SLEEP(0)",
]


def adapter(env: Any, **config: Any) -> MySQLDatabase:
    settings = {"connection_string_env": "MYSQL_URL", "pool_size": 2, **config}
    return MySQLDatabase(MySQLConfig(**settings), env, ADMIN_OK)


def count(my: Any, table: str) -> int:
    with my.cursor() as cursor:
        cursor.execute(f"SELECT count(*), group_concat(name ORDER BY id) FROM {table}")
        total, names = cursor.fetchone()
    assert names == "row 1,row 2,row 3,row 4,row 5"
    return int(total)


def test_it_returns_rows_as_objects_and_binds_params_as_data(
    env: Any, my: Any, my_table: str
) -> None:
    evil = f"x'; DROP TABLE {my_table}; --"
    sql = f"SELECT %(v)s AS v, count(*) AS n, 2.50 AS price FROM {my_table} WHERE name <> %(v)s"

    rows = run(adapter(env).select(query(sql, {"v": evil})))

    assert rows.as_result() == {
        "columns": ["v", "n", "price"],
        "rows": [{"v": evil, "n": 5, "price": 2.5}],
        "row_count": 1,
        "truncated": False,
    }
    assert count(my, my_table) == 5


def test_it_pages_and_marks_a_longer_result_truncated(env: Any, my_table: str) -> None:
    sql = f"SELECT id FROM {my_table} ORDER BY id"
    db = adapter(env)

    second_page = run(db.select(query(sql, max_rows=2, offset=2)))
    last_page = run(db.select(query(sql, max_rows=2, offset=4)))

    assert (second_page.rows, second_page.truncated) == ([{"id": 3}, {"id": 4}], True)
    assert (last_page.rows, last_page.truncated) == ([{"id": 5}], False)


@pytest.mark.parametrize("write", WRITES)
def test_every_write_fails_as_a_read_only_violation_and_changes_nothing(
    env: Any, my: Any, my_table: str, write: str
) -> None:
    with pytest.raises(ReadOnlyViolationError):
        run(adapter(env).select(query(write.format(t=my_table))))

    assert count(my, my_table) == 5


@pytest.mark.parametrize("escape", ESCAPES)
def test_escapes_that_do_not_write_are_refused_early(
    env: Any, my: Any, my_table: str, escape: str
) -> None:
    with pytest.raises(NodeError) as caught:
        run(adapter(env).select(query(escape.format(t=my_table))))

    assert caught.value.code in ("read_only_violation", "db_function_not_allowed", "db_error")
    assert count(my, my_table) == 5


def test_the_catalogue_is_at_least_thirty_attempts() -> None:
    assert len(WRITES) + len(ESCAPES) >= 30


# A READ ONLY transaction does not stop the server writing or reading its own files: only the
# early check and a role without the FILE privilege do (the source test warns about the role).
FILE_ACCESS = ("INTO OUTFILE", "LOAD DATA")


@pytest.mark.parametrize("write", [w for w in WRITES if not any(f in w for f in FILE_ACCESS)])
def test_without_the_parser_the_server_still_changes_nothing(
    env: Any, my: Any, my_table: str, write: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(mysql, "check_mysql", lambda *args: None)

    # FOR UPDATE is allowed in a read-only transaction; it still changes nothing.
    with contextlib.suppress(NodeError):
        run(adapter(env).select(query(write.format(t=my_table))))

    assert count(my, my_table) == 5
    with my.cursor() as cursor:
        assert cursor.execute("SHOW TABLES LIKE %s", (f"{my_table}_new",)) == 0


def test_a_slow_query_times_out_within_a_second_and_leaves_nothing_running(
    env: Any, my: Any
) -> None:
    marker = unique("slow")
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as caught:
        run(adapter(env).select(query(f"SELECT SLEEP(60) AS {marker}", timeout_ms=300)))

    assert time.monotonic() - started < 20  # stopped: the query alone would take 60 s
    assert caught.value.code == "timeout"
    with my.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE info LIKE %s AND id <> CONNECTION_ID()",
            (f"%{marker}%",),
        )
        assert cursor.fetchone() == (0,)


def test_a_dead_server_fails_clearly_and_retryably_without_the_password() -> None:
    env = {"MYSQL_URL": "mysql://reader:hunter2secret@127.0.0.1:1/test"}.get
    with pytest.raises(ConnectionFailed) as caught:
        run(adapter(env).select(query("SELECT 1")))

    assert caught.value.retryable
    assert "mysql source" in caught.value.message
    assert "hunter2secret" not in caught.value.message


def test_the_pool_recovers_when_its_connections_are_killed(env: Any, my: Any) -> None:
    async def scenario() -> list[dict[str, Any]]:
        db = adapter(env, pool_size=1)
        thread_id = (await db.select(query("SELECT CONNECTION_ID() AS id"))).rows[0]["id"]
        with my.cursor() as cursor:
            cursor.execute("KILL %s", (thread_id,))
        return (await db.select(query("SELECT 2 AS two"))).rows

    assert run(scenario()) == [{"two": 2}]


def test_the_probe_warns_about_an_administrator(env: Any) -> None:
    report = run(probe(adapter(env)))

    assert report.ok
    assert any("ALL PRIVILEGES" in warning for warning in report.warnings)
