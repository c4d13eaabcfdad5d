"""The sqlite adapter: a file under the operator's root, opened read-only."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from runtime.databases.base import DatabaseError, QueryTimeout, ReadOnlyViolationError
from runtime.databases.sqlite import SQLiteDatabase
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


@pytest.mark.parametrize("path", ["../outside.db", "/etc/passwd", "sub/../../x.db"])
def test_it_refuses_a_path_outside_the_root(root: Path, path: str) -> None:
    with pytest.raises(DatabaseError, match="outside the directory"):
        adapter(root, path)


def test_it_refuses_a_symlink_that_leaves_the_root(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.db"
    sqlite3.connect(outside).close()
    (root / "link.db").symlink_to(outside)

    with pytest.raises(DatabaseError, match="outside the directory"):
        adapter(root, "link.db")


def test_a_slow_query_times_out(root: Path) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        run(adapter(root).select(query(SLOW, timeout_ms=200)))

    assert time.monotonic() - started < 1.0
