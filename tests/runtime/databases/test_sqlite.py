"""The sqlite adapter: a file in the tenant's own directory, opened read-only."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from runtime.databases.base import (
    DatabaseError,
    FileNotFound,
    QueryTimeout,
    ReadOnlyViolationError,
)
from runtime.databases.sqlite import SQLiteDatabase, sqlite_factory
from runtime.source_configs import SQLiteConfig
from tests.runtime.databases.helpers import query, run

SLOW = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
    "SELECT count(*) FROM n WHERE i < 1000000000000"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, email text)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, f"c{i}@x") for i in range(1, 6)])
    conn.close()
    return tmp_path


def adapter(root: Path, path: str = "shop.db") -> SQLiteDatabase:
    return SQLiteDatabase(SQLiteConfig(path=path), root)


def count(root: Path) -> int:
    with sqlite3.connect(root / "shop.db") as conn:
        (total,) = conn.execute("SELECT count(*) FROM orders").fetchone()
    conn.close()
    return int(total)


def test_it_reads_rows_as_objects_and_pages(root: Path) -> None:
    rows = run(
        adapter(root).select(query("SELECT id FROM orders ORDER BY id", max_rows=2, offset=2))
    )

    assert rows.as_result() == {
        "columns": ["id"],
        "rows": [{"id": 3}, {"id": 4}],
        "row_count": 2,
        "truncated": True,
    }


def test_it_binds_params_as_data(root: Path) -> None:
    sql = "SELECT count(*) AS n FROM orders WHERE email <> :v"
    rows = run(adapter(root).select(query(sql, {"v": "x'; DROP TABLE orders; --"})))

    assert rows.rows == [{"n": 5}]
    assert count(root) == 5


@pytest.mark.parametrize(
    "write",
    [
        "DELETE FROM orders",
        "INSERT INTO orders VALUES (9, 'x')",
        "DROP TABLE orders",
        "UPDATE orders SET email = 'x'",
        "CREATE TABLE t (a int)",
    ],
)
def test_a_write_fails_as_a_read_only_violation(root: Path, write: str) -> None:
    with pytest.raises(ReadOnlyViolationError):
        run(adapter(root).select(query(write)))

    assert count(root) == 5


def test_it_runs_exactly_one_statement(root: Path) -> None:
    with pytest.raises(DatabaseError):
        run(adapter(root).select(query("SELECT 1; DELETE FROM orders")))

    assert count(root) == 5


NOT_OURS = "is not among this tenant's files"


@pytest.mark.parametrize("path", ["../outside.db", "/etc/passwd", "sub/../../x.db", "missing.db"])
def test_a_path_outside_the_directory_and_a_missing_file_get_one_answer(
    root: Path, path: str
) -> None:
    (root.parent / "outside.db").touch()
    with pytest.raises(FileNotFound, match=NOT_OURS) as caught:
        run(adapter(root, path).select(query("SELECT 1")))

    assert caught.value.message == f"The SQLite file {path!r} {NOT_OURS}" + (
        "; the operator places them in the tenant's own directory, "
        "AGENTFLOW_SQLITE_ROOT/t<tenant id>/."
    )


def test_it_refuses_a_symlink_that_leaves_the_directory(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.db"
    sqlite3.connect(outside).close()
    (root / "link.db").symlink_to(outside)

    with pytest.raises(FileNotFound, match=NOT_OURS):
        run(adapter(root, "link.db").select(query("SELECT 1")))


def test_each_tenant_reads_only_its_own_directory(tmp_path: Path) -> None:
    for tenant, name in (("t1", "one"), ("t2", "two")):
        (tmp_path / tenant).mkdir()
        with sqlite3.connect(tmp_path / tenant / "catalogue.db") as conn:
            conn.execute(f"CREATE TABLE owner AS SELECT '{name}' AS name")
        conn.close()
    config = SQLiteConfig(path="catalogue.db")

    def read(tenant: str, path: str = "catalogue.db") -> object:
        db = sqlite_factory(tmp_path, tenant)(SQLiteConfig(path=path), None)
        return run(db.select(query("SELECT name FROM owner"))).rows

    assert read("t1") == [{"name": "one"}]
    assert read("t2") == [{"name": "two"}]
    for tenant, path in (("t1", "../t2/catalogue.db"), ("", "t1/catalogue.db"), ("..", "t1/x")):
        with pytest.raises(FileNotFound):
            read(tenant, path)
    assert config.path == "catalogue.db"


@pytest.mark.parametrize(
    "escape",
    [
        "ATTACH DATABASE 'other.db' AS o",
        "ATTACH DATABASE 'file:/tmp/x.db?mode=rwc' AS o",
        "PRAGMA query_only = OFF",
        "PRAGMA table_info(orders)",
        "VACUUM INTO '/tmp/copy.db'",
    ],
)
def test_only_reads_and_function_calls_are_authorized(root: Path, escape: str) -> None:
    with pytest.raises(ReadOnlyViolationError, match="read tables and call functions"):
        run(adapter(root).select(query(escape)))

    assert sorted(p.name for p in root.iterdir()) == ["shop.db"]


def test_a_slow_query_times_out(root: Path) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        run(adapter(root).select(query(SLOW, timeout_ms=200)))

    assert time.monotonic() - started < 20  # stopped: the query alone runs for hours
