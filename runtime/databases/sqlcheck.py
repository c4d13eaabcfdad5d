"""The early, friendly check of a db node's query with the database's own grammar.

pglast (PostgreSQL's parser) and sqlglot (MySQL dialect) reject anything but one plain SELECT
before a connection is taken. This layer is only the first: it cannot see what a function does,
so the read-only transaction, the timeouts and the role still do the real enforcement.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from runtime.databases.base import DatabaseError, ReadOnlyViolationError

# psycopg and PyMySQL placeholders: `%(name)s`, `%s`, and `%%` for a literal percent sign.
PLACEHOLDER = re.compile(r"%\([^)]*\)[sbt]|%[sbt]|%%")

# Functions that act outside the read-only transaction: other sessions, files, other servers,
# session-level locks that outlive a rollback, configuration changes.
PG_SIDE_EFFECT_FUNCTIONS = frozenset(
    {
        "dblink",
        "dblink_exec",
        "dblink_connect",
        "dblink_connect_u",
        "dblink_send_query",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "set_config",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "lo_import",
        "lo_export",
        "lo_unlink",
        "lo_create",
        "lo_from_bytea",
        "lo_put",
        "pg_file_write",
        "pg_file_unlink",
        "pg_file_rename",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_notify",
        "pg_logical_emit_message",
        "pg_drop_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_create_physical_replication_slot",
    }
)
MYSQL_SIDE_EFFECT_FUNCTIONS = frozenset(
    {"get_lock", "release_lock", "release_all_locks", "load_file", "sys_exec", "sys_eval"}
)
PG_WRITE_NODES = frozenset(
    {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "IntoClause", "LockingClause"}
)


CACHED_TEXTS = 1024
"""Query texts whose check is remembered: a workflow runs the same few again and again (the
parse costs about a millisecond). Only texts that pass are remembered."""


@lru_cache(maxsize=CACHED_TEXTS)
def check_postgres(sql: str) -> None:
    """Accept exactly one plain SELECT in PostgreSQL's grammar.

    Raises:
        ReadOnlyViolationError: the text writes, locks rows or calls a function that acts
            outside the transaction.
        DatabaseError: the text does not parse, is empty, or holds several SELECTs.
    """
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(PLACEHOLDER.sub(_pg_placeholder, sql))
    except ParseError as exc:
        raise DatabaseError(f"The query is not valid PostgreSQL: {exc}.") from exc
    for raw in statements:
        if not isinstance(raw.stmt, ast.SelectStmt):
            raise _not_a_select(_words(type(raw.stmt).__name__.removesuffix("Stmt")))
        _check_pg_tree(raw.stmt)
    _one_statement(len(statements))


# MySQL runs the text of a `/*! … */` comment, and writes files with INTO OUTFILE/DUMPFILE and
# reads them with LOAD DATA/LOAD XML — none of which a READ ONLY transaction stops.
_MYSQL_STRINGS = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"")
_MYSQL_WRITE_WORDS = re.compile(
    r"/\*!|\binto\s+(?:out|dump)file\b|\bload\s+(?:data|xml)\b", re.IGNORECASE
)


def _check_mysql_words(sql: str) -> None:
    found = _MYSQL_WRITE_WORDS.search(_MYSQL_STRINGS.sub("''", sql))
    if found:
        raise ReadOnlyViolationError(
            f"The db node only reads; {found.group(0).strip()!r} would run a write or touch "
            "the server's files."
        )


@lru_cache(maxsize=CACHED_TEXTS)
def check_mysql(sql: str) -> None:
    """Accept exactly one plain SELECT in MySQL's grammar (sqlglot's `mysql` dialect).

    Raises:
        ReadOnlyViolationError: as `check_postgres`, also for `@variables` (session state).
        DatabaseError: the text does not parse, is empty, or holds several SELECTs.
    """
    import sqlglot
    from sqlglot import exp

    _check_mysql_words(sql)
    try:
        statements = [s for s in sqlglot.parse(PLACEHOLDER.sub(_my_placeholder, sql), "mysql") if s]
    except sqlglot.ParseError as exc:
        raise DatabaseError(f"The query is not valid MySQL: {_sqlglot_problem(exc)}.") from exc
    for statement in statements:
        if not isinstance(statement, exp.Query):
            raise _not_a_select(type(statement).__name__.upper())
        _check_mysql_tree(statement)
    _one_statement(len(statements))


@lru_cache(maxsize=CACHED_TEXTS)
def pg_statement_text(sql: str) -> str:
    """The statement without the `;` that may end it, to be nested as a subquery (a trailing
    `-- comment` stays: the caller puts a line break after the text)."""
    from pglast.parser import ParseError, scan

    try:
        tokens = [t for t in scan(sql) if t.name not in ("SQL_COMMENT", "C_COMMENT")]
    except ParseError:
        return sql
    end = len(tokens)
    while end and tokens[end - 1].name == "ASCII_59":  # `;`
        end -= 1
    return sql if end == len(tokens) else sql[: tokens[end].start]


def _check_pg_tree(statement: Any) -> None:
    from pglast import ast
    from pglast.visitors import Visitor

    class Finder(Visitor):
        def visit(self, ancestors: Any, node: Any) -> None:
            name = type(node).__name__
            if name in PG_WRITE_NODES:
                raise _write_node(name)
            if isinstance(node, ast.FuncCall) and node.funcname:
                _check_function(node.funcname[-1].sval, PG_SIDE_EFFECT_FUNCTIONS)

    Finder()(statement)


def _check_mysql_tree(statement: Any) -> None:
    from sqlglot import exp

    writes = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Command)
    for node in statement.walk():
        if isinstance(node, writes):
            raise _not_a_select(type(node).__name__.upper())
        if isinstance(node, exp.Lock):
            raise _write_node("LockingClause")
        if isinstance(node, exp.Into):
            raise _write_node("IntoClause")
        if isinstance(node, exp.Parameter):
            raise ReadOnlyViolationError(
                "The db node runs one plain SELECT: @variables change the session; "
                "pass values through params instead."
            )
        if isinstance(node, exp.Func):
            _check_function(node.sql_name(), MYSQL_SIDE_EFFECT_FUNCTIONS)
            if isinstance(node, exp.Anonymous):
                _check_function(str(node.this), MYSQL_SIDE_EFFECT_FUNCTIONS)


def _check_function(name: str, forbidden: frozenset[str]) -> None:
    if name.lower() in forbidden:
        raise ReadOnlyViolationError(
            f"The db node only reads: {name}() acts outside the read-only transaction "
            "and is not allowed."
        )


def _write_node(name: str) -> ReadOnlyViolationError:
    what = {
        "LockingClause": "FOR UPDATE/FOR SHARE locks rows",
        "IntoClause": "SELECT … INTO writes a table or a variable",
    }.get(name, f"{name.removesuffix('Stmt').upper()} writes data")
    return ReadOnlyViolationError(f"The db node only reads: {what}. Use a plain SELECT.")


def _not_a_select(kind: str) -> ReadOnlyViolationError:
    return ReadOnlyViolationError(
        f"The db node only runs one plain SELECT; this query is not one (it is {kind})."
    )


def _one_statement(count: int) -> None:
    if count == 0:
        raise DatabaseError("The query is empty: give the db node one SELECT.")
    if count > 1:
        raise DatabaseError(
            f"The query holds {count} statements; the db node runs exactly one SELECT."
        )


def _words(camel: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", camel).upper()


def _pg_placeholder(match: re.Match[str]) -> str:
    return "%" if match.group() == "%%" else "$1"


def _my_placeholder(match: re.Match[str]) -> str:
    return "%" if match.group() == "%%" else "?"


def _sqlglot_problem(exc: Any) -> str:
    errors = getattr(exc, "errors", None) or [{}]
    first = errors[0]
    where = f" (line {first.get('line')}, column {first.get('col')})" if first.get("line") else ""
    return f"{first.get('description') or 'syntax error'}{where}"
