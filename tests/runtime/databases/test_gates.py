"""The gates that need the server: `x.name` calls, and privileged roles refused (asked once per
source), against the real PostgreSQL and MariaDB on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from runtime.databases import mysql, postgres
from runtime.databases.base import FunctionNotAllowed, PrivilegedRole, ReadOnlyViolationError
from runtime.databases.functions import DEFAULT_POLICY, SQLPolicy
from runtime.databases.mysql import MySQLDatabase
from runtime.databases.postgres import PostgresDatabase
from runtime.databases.roles import RoleFacts, pg_role_facts
from runtime.source_configs import MySQLConfig, PostgresConfig
from tests.runtime.databases.helpers import ADMIN_OK, MYSQL_DSN, PG_DSN, query, run, unique


def pg_db(dsn: str, policy: SQLPolicy = DEFAULT_POLICY) -> PostgresDatabase:
    config = PostgresConfig(connection_string_env="PG_URL", pool_size=1)
    return PostgresDatabase(config, {"PG_URL": dsn}.get, policy)


def my_db(dsn: str, policy: SQLPolicy = DEFAULT_POLICY) -> MySQLDatabase:
    config = MySQLConfig(connection_string_env="MYSQL_URL", pool_size=1)
    return MySQLDatabase(config, {"MYSQL_URL": dsn}.get, policy)


@pytest.fixture
def pg_role(pg: psycopg.Connection[Any], pg_table: str) -> Iterator[str]:
    """A login role that may only SELECT from the table."""
    role = unique("af_gate")
    pg.execute(f"CREATE ROLE {role} LOGIN")
    pg.execute(f"GRANT SELECT ON {pg_table} TO {role}")
    yield role
    pg.execute(f"DROP OWNED BY {role}")
    pg.execute(f"DROP ROLE {role}")


def as_role(role: str) -> str:
    return f"postgresql://{role}@127.0.0.1:5432/test"


def test_a_dotted_name_that_calls_a_function_off_the_list_is_refused(pg_role: str) -> None:
    db = pg_db(as_role(pg_role))
    # The server does call a function written after a dot: upper('abc') here.
    assert run(db.select(query("SELECT ('abc'::text).upper AS u"))).rows == [{"u": "ABC"}]

    for sql in ("SELECT (1).pg_cancel_backend", "SELECT (0).pg_terminate_backend AS x"):
        with pytest.raises(FunctionNotAllowed, match=r"pg_(cancel|terminate)_backend"):
            run(db.select(query(sql)))


def test_a_qualified_column_that_is_not_a_function_reads_as_ever(
    pg_role: str, pg_table: str
) -> None:
    sql = f"SELECT t.id, t.name FROM {pg_table} t ORDER BY t.id LIMIT 1"
    assert run(pg_db(as_role(pg_role)).select(query(sql))).rows == [{"id": 1, "name": "row 1"}]


def test_a_computed_field_of_the_databases_own_runs_once_its_schema_is_allowed(
    pg: psycopg.Connection[Any], pg_role: str, pg_table: str
) -> None:
    pg.execute(
        f"CREATE FUNCTION {pg_table}_label(r {pg_table}) RETURNS text "
        "LANGUAGE sql AS $$ SELECT 'item ' || r.id $$"
    )
    sql = f"SELECT t.{pg_table}_label AS label FROM {pg_table} t WHERE t.id = 2"

    with pytest.raises(FunctionNotAllowed, match=f"{pg_table}_label"):
        run(pg_db(as_role(pg_role)).select(query(sql)))
    allowed = SQLPolicy(pg_schemas=frozenset({"public"}))
    assert run(pg_db(as_role(pg_role), allowed).select(query(sql))).rows == [{"label": "item 2"}]


def test_a_superuser_source_is_refused_unless_the_operator_allows_it() -> None:
    with pytest.raises(PrivilegedRole) as caught:
        run(pg_db(PG_DSN).select(query("SELECT 1 AS one")))

    assert caught.value.code == "db_privileged_role" and not caught.value.retryable
    assert "postgres" in caught.value.message and "superuser" in caught.value.message
    assert "AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES" in caught.value.message
    assert run(pg_db(PG_DSN, ADMIN_OK).select(query("SELECT 1 AS one"))).rows == [{"one": 1}]


def test_a_role_that_reads_the_servers_files_is_refused(
    pg: psycopg.Connection[Any], pg_role: str
) -> None:
    pg.execute(f"GRANT pg_read_server_files TO {pg_role}")

    with pytest.raises(PrivilegedRole, match="pg_read_server_files"):
        run(pg_db(as_role(pg_role)).select(query("SELECT 1 AS one")))


def test_what_the_role_may_do_is_asked_once_per_source(
    pg_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []

    def counted(row: tuple[Any, ...]) -> RoleFacts:
        asked.append(row)
        return pg_role_facts(row)

    monkeypatch.setattr(postgres, "pg_role_facts", counted)
    db = pg_db(as_role(pg_role))

    async def three() -> None:
        for _ in range(3):
            await db.select(query("SELECT 1 AS one"))

    run(three())
    assert len(asked) == 1


@pytest.fixture
def my_user(my: Any) -> Iterator[str]:
    """A user that may SELECT in `test`; the test grants it more."""
    user = unique("af_gate")
    with my.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%'")
        cursor.execute(f"GRANT SELECT ON test.* TO '{user}'@'%'")
    yield user
    with my.cursor() as cursor:
        cursor.execute(f"DROP USER '{user}'@'%'")


def as_user(user: str) -> str:
    return MYSQL_DSN.replace("root@", f"{user}@")


def test_a_mysql_user_with_the_file_privilege_is_refused(my: Any, my_user: str) -> None:
    assert run(my_db(as_user(my_user)).select(query("SELECT 1 AS one"))).rows == [{"one": 1}]
    with my.cursor() as cursor:
        cursor.execute(f"GRANT FILE ON *.* TO '{my_user}'@'%'")

    with pytest.raises(PrivilegedRole, match="FILE on"):
        run(my_db(as_user(my_user)).select(query("SELECT 1 AS one")))
    with pytest.raises(PrivilegedRole, match="ALL PRIVILEGES on"):
        run(my_db(MYSQL_DSN).select(query("SELECT 1 AS one")))  # root


def server_file(my: Any, path: str) -> bool:
    with my.cursor() as cursor:
        cursor.execute("SELECT LOAD_FILE(%s) IS NOT NULL", (path,))
        return bool(cursor.fetchone()[0])


@pytest.mark.parametrize(
    "comment", ["/*M! INTO OUTFILE '{p}' */", "/*!50000 INTO OUTFILE '{p}' */"]
)
def test_an_executable_comment_is_the_only_thing_between_a_file_user_and_a_written_file(
    my: Any, my_user: str, comment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with my.cursor() as cursor:
        cursor.execute(f"GRANT FILE ON *.* TO '{my_user}'@'%'")
    path = f"/tmp/{unique('af_outfile')}.txt"
    sql = f"SELECT 1 AS a {comment.format(p=path)}"
    db = my_db(as_user(my_user), SQLPolicy(allow_privileged_roles=True))
    try:
        with pytest.raises(ReadOnlyViolationError, match="comment"):
            run(db.select(query(sql)))
        assert not server_file(my, path)
        # Without the early check the server does write it, READ ONLY transaction and all.
        monkeypatch.setattr(mysql, "check_mysql", lambda *args: None)
        with contextlib.suppress(Exception):
            run(db.select(query(sql)))
        assert server_file(my, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
