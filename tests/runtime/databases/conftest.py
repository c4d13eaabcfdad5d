from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import psycopg
import pytest

from runtime import loop as runtime_loop
from runtime.databases.limits import DBLimits, configure, db_limits
from runtime.databases.pool import close_pools
from tests.runtime.databases.helpers import MYSQL_DSN, PG_DSN, unavailable, unique


@pytest.fixture
def pg() -> Iterator[psycopg.Connection[Any]]:
    """An autocommit admin connection to the test PostgreSQL."""
    try:
        conn = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", exc)
    with conn:
        yield conn


@pytest.fixture
def pg_table(pg: psycopg.Connection[Any]) -> Iterator[str]:
    """A table of 5 rows (id, name), dropped after the test."""
    name = unique("af_t")
    pg.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text)")
    pg.execute(f"INSERT INTO {name} SELECT g, 'row ' || g FROM generate_series(1, 5) g")
    yield name
    pg.execute(f"DROP TABLE IF EXISTS {name} CASCADE")


@pytest.fixture
def my() -> Iterator[Any]:
    """An autocommit root connection to the test MariaDB/MySQL."""
    import pymysql

    try:
        conn = pymysql.connect(
            host="127.0.0.1", user="root", database="test", autocommit=True, connect_timeout=3
        )
    except pymysql.err.MySQLError as exc:
        unavailable("MariaDB/MySQL", exc)
    yield conn
    conn.close()


@pytest.fixture
def my_table(my: Any) -> Iterator[str]:
    name = unique("af_t")
    with my.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name varchar(50)) ENGINE=InnoDB")
        cursor.execute(
            f"INSERT INTO {name} VALUES (1,'row 1'),(2,'row 2'),(3,'row 3'),(4,'row 4'),(5,'row 5')"
        )
    yield name
    with my.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def env() -> Any:
    return {"PG_URL": PG_DSN, "MYSQL_URL": MYSQL_DSN}.get


@pytest.fixture
def limits() -> Iterator[Callable[..., DBLimits]]:
    """Set the operator's database ceilings for one test (`limits(max_per_source=2)`)."""
    before = db_limits()
    yield partial(configure, before)
    configure(before)


@pytest.fixture
def runtime_pools() -> Iterator[None]:
    """Close the pools a test opened on the process's runtime loop (they outlive runs)."""
    yield
    runtime_loop.run(close_pools(shutdown=True))
