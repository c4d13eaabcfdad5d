"""The early check of a db node's query, with the database's own grammar and an allow-list.

PostgreSQL: pglast (PostgreSQL's parser) splits the text as the server does (dollar quotes,
nested comments) and must find exactly one plain SELECT; every function it calls, however
spelled (quoted, upper case, `pg_catalog."query_to_xml"`, in a subquery or CTE), and every
schema-qualified operator must be on the allow-list (runtime/databases/functions.py). Names
read as `x.name` or `(expr).name` can also call `name(x)`; they are returned for the adapter to
compare with the database's own functions (`check_pg_fields`).

MySQL: our lexer (runtime/databases/mysqllex.py) reads the text as the server does, refuses
executable comments and @variables, and checks every call against the allow-list with names
unquoted; sqlglot then checks that it is one SELECT.

This layer cannot see what a function of the allow-list does inside the database's own code
(views, casts, an allowed schema's functions): the read-only transaction, the timeouts and the
role still do the real enforcement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from runtime.databases.base import DatabaseError, FunctionNotAllowed, ReadOnlyViolationError
from runtime.databases.functions import (
    DEFAULT_POLICY,
    MYSQL_SYNTAX_WORDS,
    PG_TABLESAMPLE_METHODS,
    SQLPolicy,
)
from runtime.databases.mysqllex import PLACEHOLDER, Token, lex

PG_WRITE_NODES = frozenset(
    {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "IntoClause", "LockingClause"}
)
NAMES = frozenset({"word", "quoted", "dquoted"})
"""Tokens that name a function when `(` follows."""
_AFTER = frozenset({("against", ")"), ("columns", "string"), ("columns", "dquoted")})
"""Unreserved words that are syntax after what precedes them: `MATCH (a) AGAINST (…)`,
`JSON_TABLE(doc, '$[*]' COLUMNS (…))`."""
CACHED_TEXTS = 1024
"""Query texts whose check is remembered: a workflow runs the same few again and again (the
parse costs about a millisecond). Only texts that pass are remembered."""


@dataclass(frozen=True, slots=True)
class PgChecked:
    field_names: frozenset[str]
    """Names read as `x.name` or `(expr).name`: a column or a field, or PostgreSQL's
    attribute notation for `name(x)` when no column has that name."""


@lru_cache(maxsize=CACHED_TEXTS)
def check_postgres(sql: str, policy: SQLPolicy = DEFAULT_POLICY) -> PgChecked:
    """Accept exactly one plain SELECT in PostgreSQL's grammar, calling allowed functions only.

    Raises:
        FunctionNotAllowed: it calls a function, or a schema's operator, not on the allow-list.
        ReadOnlyViolationError: the text writes or locks rows.
        DatabaseError: the text does not parse, is empty, or holds several statements.
    """
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(PLACEHOLDER.sub(_pg_placeholder, sql))
    except ParseError as exc:
        raise DatabaseError(f"The query is not valid PostgreSQL: {exc}.") from exc
    fields: set[str] = set()
    for raw in statements:
        if not isinstance(raw.stmt, ast.SelectStmt):
            raise _not_a_select(_words(type(raw.stmt).__name__.removesuffix("Stmt")))
        fields |= _check_pg_tree(raw.stmt, policy)
    _one_statement(len(statements))
    return PgChecked(frozenset(fields))


def check_pg_fields(
    checked: PgChecked, policy: SQLPolicy, functions: Mapping[str, frozenset[str]]
) -> None:
    """Refuse `x.name` where `name` is a function of the database that takes one argument and
    is not allowed (unqualified, or in every schema that has one so named): PostgreSQL calls
    `name(x)` when `x` has no column `name`.

    Raises:
        FunctionNotAllowed: such a name is read.
    """
    for name in sorted(n for n in checked.field_names if n in functions):
        schemas = functions[name]
        if not policy.pg_allows(None, name) and not all(
            policy.pg_allows(schema, name) for schema in schemas
        ):
            raise FunctionNotAllowed(
                f"The db node may call only allowed functions: '.{name}' after a value calls "
                f"{name}() on it when there is no column of that name, and {name}() is not "
                "allowed. Name the column without its table, or ask the operator to allow the "
                "function (AGENTFLOW_PG_ALLOWED_FUNCTIONS)."
            )


@lru_cache(maxsize=CACHED_TEXTS)
def check_mysql(sql: str, policy: SQLPolicy = DEFAULT_POLICY, has_params: bool = False) -> None:
    """Accept exactly one plain SELECT in MySQL's grammar, calling allowed functions only.

    `has_params`: values will be bound (PyMySQL formats `%(name)s` into the text).

    Raises:
        FunctionNotAllowed: it calls a function not on the allow-list.
        ReadOnlyViolationError: it writes, locks, writes a file (INTO OUTFILE), sets a
            variable, or hides code in an executable comment.
        DatabaseError: the text does not parse, is empty, or holds several statements.
    """
    import sqlglot
    from sqlglot import exp

    lexed = lex(sql, has_params=has_params)
    _check_mysql_tokens(lexed.tokens, policy)
    try:
        statements = [s for s in sqlglot.parse(lexed.code, "mysql") if s]
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


def _check_pg_tree(statement: Any, policy: SQLPolicy) -> set[str]:
    from pglast import ast
    from pglast.visitors import Visitor

    fields: set[str] = set()

    class Finder(Visitor):
        def visit(self, ancestors: Any, node: Any) -> None:
            name = type(node).__name__
            if name in PG_WRITE_NODES:
                raise _write_node(name)
            if isinstance(node, ast.FuncCall):
                _check_pg_call(_names(node.funcname), policy)
            elif isinstance(node, ast.A_Expr) and node.name and len(node.name) > 1:
                _check_pg_operator(_names(node.name), policy)
            elif isinstance(node, ast.ColumnRef) and node.fields and len(node.fields) > 1:
                fields.update(_names(node.fields[-1:]))
            elif isinstance(node, ast.A_Indirection):
                fields.update(_names(node.indirection))
            elif isinstance(node, ast.RangeTableSample):
                _check_pg_sample(_names(node.method))

    Finder()(statement)
    return fields


def _names(items: Any) -> list[str]:
    """The identifiers of a name list, as the server compares them (pglast has folded the
    unquoted ones to lower case and unquoted the quoted ones)."""
    return [item.sval for item in items or () if type(item).__name__ == "String"]


def _check_pg_call(names: list[str], policy: SQLPolicy) -> None:
    if not names:
        return
    schema = names[-2] if len(names) > 1 else None
    if not policy.pg_allows(schema, names[-1]):
        raise _not_allowed(".".join(names), "AGENTFLOW_PG_ALLOWED_FUNCTIONS")


def _check_pg_operator(names: list[str], policy: SQLPolicy) -> None:
    if not policy.pg_allows_schema(names[-2]):
        raise FunctionNotAllowed(
            f"The db node may call only allowed functions: OPERATOR({'.'.join(names)}) is an "
            f"operator of the schema {names[-2]}, which is not allowed "
            "(AGENTFLOW_PG_ALLOWED_SCHEMAS, set by the operator)."
        )


def _check_pg_sample(names: list[str]) -> None:
    if len(names) != 1 or names[0] not in PG_TABLESAMPLE_METHODS:
        raise _not_allowed(".".join(names) or "?", "AGENTFLOW_PG_ALLOWED_FUNCTIONS")


def _check_mysql_tokens(tokens: list[Token], policy: SQLPolicy) -> None:
    for i, token in enumerate(tokens):
        if token.kind == "word":
            _check_mysql_word(tokens, i)
        # "name"( is a call under ANSI_QUOTES, and a syntax error otherwise: checked as one.
        if token.kind not in NAMES or not _is_punct(tokens, i + 1, "("):
            continue
        schema = tokens[i - 2].text if _is_punct(tokens, i - 1, ".") and i > 1 else None
        if policy.mysql_allows(schema, token.text) or (schema is None and _not_a_call(tokens, i)):
            continue
        name = f"{schema}.{token.text}" if schema else token.text
        raise _not_allowed(name, "AGENTFLOW_MYSQL_ALLOWED_FUNCTIONS")


def _check_mysql_word(tokens: list[Token], i: int) -> None:
    word = tokens[i].text.lower()
    following = tokens[i + 1].text.lower() if i + 1 < len(tokens) else ""
    if word == "into":
        raise _write_node("IntoClause")
    if word == "load" and following in ("data", "xml"):
        raise ReadOnlyViolationError(
            "The db node only reads: LOAD DATA/LOAD XML reads a file into a table."
        )


def _not_a_call(tokens: list[Token], i: int) -> bool:
    """`name (` that is syntax, not a call: a keyword (`IN (`, `DECIMAL(10, 2)`), an alias or
    type after AS, a CTE's name with its columns (`cte (a, b) AS (`), AGAINST, COLUMNS."""
    token, before = tokens[i], tokens[i - 1] if i else None
    word = token.text.lower() if token.kind == "word" else None
    if word in MYSQL_SYNTAX_WORDS or before is None:
        return word in MYSQL_SYNTAX_WORDS
    if (word, before.text if before.kind == "punct" else before.kind) in _AFTER:
        return True
    if before.kind == "word" and before.text.lower() == "as":
        return True
    close = _closing(tokens, i + 1)
    if close is None:
        return False
    return _is_word(tokens, close + 1, "as") and _is_punct(tokens, close + 2, "(")


def _closing(tokens: list[Token], opening: int) -> int | None:
    depth = 0
    for j in range(opening, len(tokens)):
        if tokens[j].kind == "punct" and tokens[j].text in "()":
            depth += 1 if tokens[j].text == "(" else -1
            if depth == 0:
                return j
    return None


def _is_punct(tokens: list[Token], i: int, text: str) -> bool:
    return 0 <= i < len(tokens) and tokens[i].kind == "punct" and tokens[i].text == text


def _is_word(tokens: list[Token], i: int, text: str) -> bool:
    return 0 <= i < len(tokens) and tokens[i].kind == "word" and tokens[i].text.lower() == text


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


def _not_allowed(name: str, setting: str) -> FunctionNotAllowed:
    return FunctionNotAllowed(
        f"The db node may call only allowed functions, and {name}() is not one: it is not on "
        "the built-in list of functions that only compute (aggregates, string, math, "
        f"date/time, JSON…). The operator can allow it ({setting})."
    )


def _write_node(name: str) -> ReadOnlyViolationError:
    what = {
        "LockingClause": "FOR UPDATE/FOR SHARE locks rows",
        "IntoClause": "SELECT … INTO writes a table, a file or a variable",
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


def _sqlglot_problem(exc: Any) -> str:
    errors = getattr(exc, "errors", None) or [{}]
    first = errors[0]
    where = f" (line {first.get('line')}, column {first.get('col')})" if first.get("line") else ""
    return f"{first.get('description') or 'syntax error'}{where}"
