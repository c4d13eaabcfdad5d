"""The early checks on their own (no server): the allow-lists however a call is spelled, MySQL's
lexical rules, and the dialect-neutral check at validation time."""

from __future__ import annotations

import pytest

from runtime.databases.base import DatabaseError, FunctionNotAllowed, ReadOnlyViolationError
from runtime.databases.functions import sql_policy
from runtime.databases.sqlcheck import check_mysql, check_postgres
from runtime.sqltext import single_select_problem

PG_REFUSED = [
    "SELECT query_to_xml('select 1', true, false, '')",
    "SELECT QUERY_TO_XML('select 1', true, false, '')",
    "SELECT pg_catalog.\"query_to_xml\"('select 1', true, false, '')",
    "SELECT test.pg_catalog.query_to_xml('select 1', true, false, '')",
    "SELECT * FROM (SELECT query_to_xml('select 1', true, false, '')) s",
    "WITH a AS (SELECT pg_read_file('/etc/hostname')) SELECT * FROM a",
    "SELECT 1 WHERE EXISTS (SELECT pg_terminate_backend(1))",
    "SELECT pg_cancel_backend(1)",
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity",
    "SELECT dblink('dbname=test', 'select 1')",
    "SELECT dblink_exec('dbname=test', 'DELETE FROM t')",
    "SELECT * FROM dblink('dbname=test', 'select 1') AS t(a int)",
    "SELECT lo_import('/etc/hostname')",
    "SELECT lo_get(1)",
    "SELECT set_config('statement_timeout', '0', false)",
    "SELECT pg_sleep(1)",
    "SELECT pg_advisory_lock(1)",
    "SELECT ts_stat('select 1')",
    "SELECT table_to_xml('t', true, false, '')",
    "SELECT current_setting('data_directory')",
    "SELECT nextval('s')",
    "SELECT \"LOWER\"('a')",  # quoted: a function literally named LOWER, not lower()
    "SELECT public.lower('a')",
    "SELECT 1 OPERATOR(public.+) 1",
    "SELECT * FROM t TABLESAMPLE my_sampler (1)",
    "SELECT lower(x) FROM t ORDER BY pg_ls_dir('.')",
]


@pytest.mark.parametrize("sql", PG_REFUSED)
def test_postgres_refuses_a_function_off_the_allow_list_however_spelled(sql: str) -> None:
    with pytest.raises(FunctionNotAllowed) as caught:
        check_postgres(sql)

    assert caught.value.code == "db_function_not_allowed"
    assert isinstance(caught.value, ReadOnlyViolationError)
    assert "()" in caught.value.message or "OPERATOR" in caught.value.message


PG_ACCEPTED = [
    "SELECT $$;DELETE FROM t$$ AS harmless",
    "SELECT $tag$ it's; DROP TABLE t $tag$ AS harmless",
    "SELECT 1 /* nested /* comment */ ; still a comment */ AS one",
    "SELECT t.name, lower(t.name), count(*), string_agg(t.name, ',') FROM t GROUP BY 1, 2",
    "SELECT extract(year FROM now()), substring('abc' FROM 1 FOR 2), trim(both FROM ' a ')",
    "SELECT position('a' IN 'ab'), now() AT TIME ZONE 'utc', (1, 2) OVERLAPS (3, 4)",
    "SELECT coalesce(a, b), greatest(a, b), nullif(a, b), CASE WHEN a THEN 1 END FROM t",
    "SELECT jsonb_agg(x) FILTER (WHERE x > 1) OVER (PARTITION BY y) FROM t",
    "WITH c AS (SELECT generate_series(1, 3) g) "
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY g) FROM c",
    "SELECT x::numeric(10, 2), CAST(x AS text), 1 OPERATOR(pg_catalog.+) 2 FROM t",
    "SELECT * FROM t TABLESAMPLE bernoulli (10)",
    "SELECT pg_catalog.lower('A'), to_char(now(), 'YYYY'), date_trunc('day', now())",
]


@pytest.mark.parametrize("sql", PG_ACCEPTED)
def test_postgres_accepts_one_select_of_allowed_functions(sql: str) -> None:
    check_postgres(sql)


def test_postgres_returns_the_names_read_after_a_dot_for_the_adapter_to_compare() -> None:
    checked = check_postgres("SELECT t.name, (x).pg_cancel_backend, s.t.c FROM t, s")

    assert checked.field_names == {"name", "pg_cancel_backend", "c"}


def test_the_operator_may_allow_functions_and_schemas() -> None:
    policy = sql_policy(
        pg_functions=["current_setting", "public.f"], pg_schemas=["reports"], mysql_functions=["X"]
    )

    check_postgres("SELECT current_setting('x'), pg_catalog.current_setting('x')", policy)
    check_postgres("SELECT public.f(), reports.g(), 1 OPERATOR(reports.+) 1", policy)
    check_mysql("SELECT x(1), X(2)", policy)
    for sql in ("SELECT f()", "SELECT other.f()", "SELECT public.g()"):
        with pytest.raises(FunctionNotAllowed):
            check_postgres(sql, policy)


MYSQL_REFUSED = [
    ("SELECT `load_file`('/etc/hostname')", FunctionNotAllowed),
    ("SELECT LOAD_FILE('/etc/hostname')", FunctionNotAllowed),
    ("SELECT load_file /* x */ ('/etc/hostname')", FunctionNotAllowed),
    ("SELECT test.`f`(1)", FunctionNotAllowed),
    ("SELECT `sleep`(1)", FunctionNotAllowed),
    ("SELECT \"load_file\"('/etc/hostname')", FunctionNotAllowed),  # a name under ANSI_QUOTES
    ("SELECT benchmark(100000000, md5('a'))", FunctionNotAllowed),
    ("SELECT get_lock('a', 1)", FunctionNotAllowed),
    ("SELECT 1 AS a /*M! INTO OUTFILE 'out.txt' */", ReadOnlyViolationError),
    ("SELECT 1 AS a /*m! INTO OUTFILE 'out.txt' */", ReadOnlyViolationError),
    ("SELECT 1 /*!50000 INTO OUTFILE 'out.txt' */", ReadOnlyViolationError),
    ("SELECT 1 /*! , load_file('/etc/hostname') */", ReadOnlyViolationError),
    ("SELECT /*+ SET_VAR(max_statement_time = 0) */ 1", ReadOnlyViolationError),
    ("SELECT 1--1 INTO OUTFILE '/tmp/x'", ReadOnlyViolationError),  # `--1` is not a comment
    ("SELECT 1 INTO DUMPFILE '/tmp/x'", ReadOnlyViolationError),
    ("SELECT 1 INTO @x", ReadOnlyViolationError),
    ("SELECT @@secure_file_priv", ReadOnlyViolationError),
    ("SELECT * FROM t FOR UPDATE", ReadOnlyViolationError),
    ("LOAD DATA INFILE '/etc/hostname' INTO TABLE t", ReadOnlyViolationError),
    ('SELECT "a\\" INTO OUTFILE \'/tmp/x\' -- "', DatabaseError),  # read two ways: refused
    ("SELECT 1 /* never closed", DatabaseError),
    ("SELECT 'never closed", DatabaseError),
    ("SELECT 1\x00", DatabaseError),
]


@pytest.mark.parametrize(("sql", "error"), MYSQL_REFUSED)
def test_mysql_refuses_executable_comments_files_variables_and_other_functions(
    sql: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_mysql(sql)


@pytest.mark.parametrize("sql", ["SELECT '%(v)s' AS a", "SELECT 1 /* %(v)s */", "SELECT `%(v)s`"])
def test_mysql_refuses_a_placeholder_the_driver_would_put_inside_a_string_or_comment(
    sql: str,
) -> None:
    check_mysql(sql)  # no values bound: nothing is formatted into the text
    with pytest.raises(DatabaseError, match="placeholder inside"):
        check_mysql(sql, has_params=True)


MYSQL_ACCEPTED = [
    "SELECT lower(name), count(*), group_concat(name ORDER BY id SEPARATOR ',') FROM t",
    "WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5) SELECT n FROM c",
    "SELECT CAST(x AS DECIMAL(10, 2)), CONVERT(x, CHAR(10)), CONVERT(x USING utf8mb4) FROM t",
    "SELECT * FROM t WHERE id IN (1, 2) AND EXISTS (SELECT 1) AND NOT (id = 3)",
    "SELECT MATCH (name) AGAINST ('x' IN BOOLEAN MODE) FROM t",
    "SELECT j.id FROM JSON_TABLE('[1]', '$[*]' COLUMNS (id INT PATH '$')) AS j",
    "SELECT 1 -- a comment\n, 2 # another\n, '/*!' AS not_a_comment, `/*!`",
    "SELECT 'it''s', 'a\\'b', \"x\"\"y\", `we``ird` FROM t",
    "SELECT %(v)s AS v FROM t WHERE name <> %(v)s AND name LIKE 'a%%'",
    "SELECT 1--1",
    "SELECT `lower`(name), LOWER (name) FROM t",
]


@pytest.mark.parametrize("sql", MYSQL_ACCEPTED)
def test_mysql_accepts_one_select_of_allowed_functions(sql: str) -> None:
    check_mysql(sql, has_params="%(" in sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT $$;DELETE FROM t$$",
        "SELECT 1 /* a /* b */ ; */",
        "SELECT 'a\\'; DELETE FROM t; --'",  # MySQL's reading: one string
        "SELECT 1 # ; not a second statement in MySQL",
        "WITH a AS (SELECT 1) SELECT * FROM a;",
    ],
)
def test_the_validation_check_refuses_no_single_select_of_either_dialect(sql: str) -> None:
    assert single_select_problem(sql) is None


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SELECT 1; DELETE FROM t", "more than one statement"),
        ("DELETE FROM t", "is not a SELECT"),
        ("/* only a comment */", "is empty"),
        ("SELECT 1 /* never closed", "never closed"),
    ],
)
def test_the_validation_check_names_what_is_wrong(sql: str, problem: str) -> None:
    assert problem in (single_select_problem(sql) or "")
