"""Issue 13's SQL attacks, replayed through the API by a tenant with an executor key, against the
real PostgreSQL and MariaDB on this machine: each is refused with a named error, and the proof
that nothing happened is read from the server itself (the other session is alive, no row is
gone, no file was read or written)."""

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

from tenants.models import Tenant
from tests.conftest import IN_CI, IssuedKey, client_for, issue_key

pytestmark = pytest.mark.django_db
EXECUTE = "/api/v1/workflows/execute"
VALIDATE = "/api/v1/workflows/validate"
PG_VAR = "AGENTFLOW_T_ACME_GATES_PG"
MY_VAR = "AGENTFLOW_T_ACME_GATES_MY"
HOSTNAME = Path("/etc/hostname").read_text().strip()


def db_spec(source: dict[str, Any], query: str, params: dict[str, Any] | None = None) -> Any:
    return {
        "name": "gates",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input", "metadata": {"required": []}},
            {
                "id": "q",
                "type": "db",
                "metadata": {"source": "db", "query": query, "params": params or {}},
            },
        ],
        "edges": [{"from": "input", "to": "q"}],
        "sources": [{"id": "db", **source}],
    }


def execute(key: IssuedKey, spec: dict[str, Any]) -> dict[str, Any]:
    answer = client_for(key).post(EXECUTE, {"workflow": spec, "initial_state": {}}, format="json")
    assert answer.status_code == 200, answer.json()
    return dict(answer.json())


def refused(key: IssuedKey, spec: dict[str, Any], code: str) -> dict[str, Any]:
    body = execute(key, spec)
    assert body["status"] == "failed", body
    assert body["error"]["code"] == code, body["error"]
    assert body["error"]["node_id"] == "q"
    return body


@pytest.fixture
def granted(tenant: Tenant) -> Tenant:
    tenant.allowed_env = [
        "AGENTFLOW_T_ACME_GATES_*@postgres|mysql",
        "AGENTFLOW_T_ACME_GATES_KEY@openai|openai_image",
    ]
    tenant.save()
    return tenant


@pytest.fixture
def executor(granted: Tenant) -> IssuedKey:
    return issue_key(granted, "executor", name="the attacker's executor key")


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgDatabase:
    admin: str
    """The superuser's DSN (the test server's)."""
    reader: str
    """A role that may only SELECT from `items`."""
    name: str


@pytest.fixture
def pg_db() -> Iterator[PgDatabase]:
    """A database of its own: `items` (3 rows), dblink, and a SELECT-only role."""
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("CI=true but the tests are not running on PostgreSQL")
        pytest.skip("needs PostgreSQL")
    db = connection.settings_dict
    base = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}"
    name = f"gates_{secrets.token_hex(4)}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(f"{base}/{name}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS dblink")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        conn.execute(f"CREATE ROLE {name}_reader LOGIN")
        conn.execute(f"GRANT SELECT ON items TO {name}_reader")
    reader = f"postgresql://{name}_reader@{db['HOST']}:{db['PORT']}/{name}"
    yield PgDatabase(f"{base}/{name}", reader, name)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.execute(f"DROP ROLE {name}_reader")


def pg_source(dsn: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(PG_VAR, dsn)
    return {"kind": "postgres", "config": {"connection_string_env": PG_VAR, "pool_size": 1}}


def items(pg_db: PgDatabase) -> int:
    with psycopg.connect(pg_db.admin) as conn:
        row = conn.execute("SELECT count(*) FROM items").fetchone()
    return int(row[0]) if row else -1


ISSUE_QUERY = (
    "SELECT query_to_xml('select count({f}(pid)) from pg_stat_activity "
    "where usename=current_user and pid<>pg_backend_pid()', true, false, '')"
)
SESSION_KILLERS = [
    ISSUE_QUERY.format(f="pg_terminate_backend"),
    ISSUE_QUERY.format(f="pg_cancel_backend"),
    "SELECT pg_catalog.\"query_to_xml\"('select 1', true, false, '')",
    "SELECT QUERY_TO_XML('select 1', TRUE, FALSE, '')",
    "WITH x AS (SELECT pg_terminate_backend(%(pid)s)) SELECT * FROM x",
    "SELECT * FROM items WHERE id IN (SELECT 1 WHERE pg_cancel_backend(%(pid)s))",
    "SELECT (%(pid)s::int).pg_terminate_backend AS done",
]


@pytest.mark.parametrize("query", SESSION_KILLERS)
def test_no_spelling_of_a_session_killer_ends_another_session_of_the_same_role(
    pg_db: PgDatabase, executor: IssuedKey, monkeypatch: pytest.MonkeyPatch, query: str
) -> None:
    with psycopg.connect(pg_db.reader, autocommit=True) as other:
        pid = other.info.backend_pid
        params = {"pid": pid} if "%(pid)s" in query else {}
        body = refused(
            executor,
            db_spec(pg_source(pg_db.reader, monkeypatch), query, params),
            "db_function_not_allowed",
        )
        assert "()" in body["error"]["message"]
        assert other.execute("SELECT 1").fetchone() == (1,)  # the other session is alive
        with psycopg.connect(pg_db.admin) as admin:
            seen = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            assert seen.fetchone() == (1,)


def test_the_issue_query_does_end_the_other_session_when_run_outside_agentflow(
    pg_db: PgDatabase,
) -> None:
    """The control: for this very role, the database alone lets the attack through."""
    with psycopg.connect(pg_db.reader, autocommit=True) as victim:
        with psycopg.connect(pg_db.reader, autocommit=True) as attacker:
            attacker.execute(ISSUE_QUERY.format(f="pg_terminate_backend"))
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")


def test_a_superuser_source_is_refused_before_any_query(
    pg_db: PgDatabase, executor: IssuedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = pg_source(pg_db.admin, monkeypatch)
    body = refused(executor, db_spec(source, "SELECT 1 AS one"), "db_privileged_role")

    assert "superuser" in body["error"]["message"]
    assert "AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES" in body["error"]["message"]


SUPERUSER_ESCAPES = [
    "SELECT query_to_xml('select dblink_exec(''dbname={db} user=postgres'', "
    "''DELETE FROM items'')', true, false, '')",
    "SELECT dblink_exec('dbname={db} user=postgres', 'DELETE FROM items')",
    "SELECT * FROM dblink('dbname={db} user=postgres', "
    "'DELETE FROM items RETURNING id') AS d(id int)",
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT ('/etc/hostname'::text).pg_read_file AS f",
    "SELECT lo_import('/etc/hostname')",
]


@pytest.mark.parametrize("query", SUPERUSER_ESCAPES)
def test_with_a_superuser_allowed_no_function_deletes_rows_or_reads_a_file(
    pg_db: PgDatabase,
    executor: IssuedKey,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    query: str,
) -> None:
    settings.AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES = True  # the operator's choice; still no escape
    source = pg_source(pg_db.admin, monkeypatch)
    body = refused(
        executor, db_spec(source, query.format(db=pg_db.name)), "db_function_not_allowed"
    )

    assert items(pg_db) == 3
    assert HOSTNAME not in json.dumps(body)


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ("SELECT $$;DELETE FROM items$$ AS harmless", [{"harmless": ";DELETE FROM items"}]),
        (
            "SELECT $t$ it's; DROP TABLE items $t$ AS harmless",
            [{"harmless": " it's; DROP TABLE items "}],
        ),
        ("SELECT count(*) AS n /* a /* nested */ ; comment */ FROM items", [{"n": 3}]),
    ],
)
def test_dollar_quotes_and_nested_comments_validate_and_run(
    pg_db: PgDatabase,
    executor: IssuedKey,
    monkeypatch: pytest.MonkeyPatch,
    query: str,
    rows: list[dict[str, Any]],
) -> None:
    spec = db_spec(pg_source(pg_db.reader, monkeypatch), query)
    validated = client_for(executor).post(VALIDATE, spec, format="json").json()
    assert validated["valid"] is True, validated

    body = execute(executor, spec)
    assert body["status"] == "success", body
    assert body["final_state"]["db_result"]["rows"] == rows
    assert items(pg_db) == 3


# --- MariaDB ------------------------------------------------------------------------------------


def mysql_root() -> Any:
    import pymysql

    try:
        return pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
    except pymysql.err.MySQLError as exc:
        if IN_CI:
            pytest.fail(f"CI=true but MariaDB/MySQL is not reachable ({exc})")
        pytest.skip(f"MariaDB/MySQL is not reachable ({exc})")


@pytest.fixture
def file_user(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A MariaDB user that may SELECT in `test` and holds FILE, as in the issue."""
    root = mysql_root()
    user = f"af_gates_{secrets.token_hex(4)}"
    with root.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%'")
        cursor.execute(f"GRANT SELECT ON test.* TO '{user}'@'%'")
        cursor.execute(f"GRANT FILE ON *.* TO '{user}'@'%'")
    monkeypatch.setenv(MY_VAR, f"mysql://{user}@127.0.0.1:3306/test")
    yield {"kind": "mysql", "config": {"connection_string_env": MY_VAR, "pool_size": 1}}
    with root.cursor() as cursor:
        cursor.execute(f"DROP USER '{user}'@'%'")
    root.close()


def server_file(path: str) -> bool:
    """Whether the server sees a file there (asked of the server: it wrote, or would write, it)."""
    root = mysql_root()
    with root.cursor() as cursor:
        cursor.execute("SELECT LOAD_FILE(%s) IS NOT NULL", (path,))
        seen = bool(cursor.fetchone()[0])
    root.close()
    return seen


def test_a_mysql_user_with_file_is_refused_before_any_query(
    file_user: dict[str, Any], executor: IssuedKey
) -> None:
    body = refused(executor, db_spec(file_user, "SELECT 1 AS one"), "db_privileged_role")

    assert "FILE on *.*" in body["error"]["message"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("SELECT 1 AS a /*M! INTO OUTFILE '{path}' */", "read_only_violation"),
        ("SELECT 1 AS a /*!50000 INTO OUTFILE '{path}' */", "read_only_violation"),
        ("SELECT 1 AS a /*!INTO DUMPFILE '{path}' */", "read_only_violation"),
        ("SELECT 1 AS a INTO/**/OUTFILE '{path}'", "read_only_violation"),
        ("SELECT 1--1 INTO OUTFILE '{path}'", "read_only_violation"),
    ],
)
def test_no_comment_trick_writes_a_file(
    file_user: dict[str, Any], executor: IssuedKey, settings: Any, query: str, code: str
) -> None:
    settings.AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES = True  # so only the early check stands
    path = f"/tmp/af_gates_{secrets.token_hex(4)}.txt"

    refused(executor, db_spec(file_user, query.format(path=path)), code)

    assert not server_file(path)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT `load_file`('/etc/hostname') AS f",
        "SELECT LOAD_FILE('/etc/hostname') AS f",
        "SELECT `test`.`load_file`('/etc/hostname') AS f",
        "SELECT load_file /* a comment */ ('/etc/hostname') AS f",
    ],
)
def test_no_spelling_of_load_file_reads_a_file(
    file_user: dict[str, Any], executor: IssuedKey, settings: Any, query: str
) -> None:
    settings.AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES = True
    body = refused(executor, db_spec(file_user, query), "db_function_not_allowed")

    assert "load_file()" in body["error"]["message"].lower()
    assert HOSTNAME not in json.dumps(body)


def test_the_source_test_fails_for_a_mysql_user_with_file(
    file_user: dict[str, Any], granted: Tenant, settings: Any
) -> None:
    developer = issue_key(granted, "developer", name="dev")
    client = client_for(developer)
    source = client.post("/api/v1/sources", {"name": "shop", **file_user}, format="json").json()

    report = client.post(f"/api/v1/sources/{source['id']}/test").json()
    assert report["ok"] is False, report
    role = {c["name"]: c for c in report["checks"]}["role"]
    assert role["ok"] is False and "FILE on *.*" in role["detail"]

    settings.AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES = True
    assert client.post(f"/api/v1/sources/{source['id']}/test").json()["ok"] is True


# --- SQLite: one directory per tenant -----------------------------------------------------------


@pytest.fixture
def catalogues(settings: Any, tmp_path: Path, tenant: Tenant, other_tenant: Tenant) -> Path:
    """Each tenant's own catalogue.sqlite3, under AGENTFLOW_SQLITE_ROOT/t<id>/."""
    import sqlite3

    settings.AGENTFLOW_SQLITE_ROOT = tmp_path
    for owner in (tenant, other_tenant):
        (tmp_path / f"t{owner.pk}").mkdir()
        with sqlite3.connect(tmp_path / f"t{owner.pk}" / "catalogue.sqlite3") as conn:
            conn.execute("CREATE TABLE owner (slug text)")
            conn.execute("INSERT INTO owner VALUES (?)", (owner.slug,))
        conn.close()
    return tmp_path


def sqlite_source(path: str) -> dict[str, Any]:
    return {"kind": "sqlite", "config": {"path": path}}


def test_a_tenant_reads_its_own_sqlite_file(catalogues: Path, executor: IssuedKey) -> None:
    body = execute(executor, db_spec(sqlite_source("catalogue.sqlite3"), "SELECT slug FROM owner"))

    assert body["status"] == "success", body
    assert body["final_state"]["db_result"]["rows"] == [{"slug": "acme"}]


def test_another_tenants_file_and_a_missing_file_get_the_same_answer(
    catalogues: Path, executor: IssuedKey, other_tenant: Tenant
) -> None:
    theirs = catalogues / f"t{other_tenant.pk}" / "catalogue.sqlite3"
    messages = {}
    for path in (
        f"../t{other_tenant.pk}/catalogue.sqlite3",
        str(theirs),
        "../../etc/hostname",
        "no-such-file.sqlite3",
    ):
        body = refused(
            executor, db_spec(sqlite_source(path), "SELECT * FROM owner"), "db_file_not_found"
        )
        messages[path] = body["error"]["message"].replace(repr(path), "<path>")
        assert "globex" not in json.dumps(body)

    assert len(set(messages.values())) == 1, messages


# --- db params never take a model's or a server's output ----------------------------------------

KEY = "AGENTFLOW_T_ACME_GATES_KEY"
LLM = {"id": "gpt", "kind": "openai", "config": {"model_name": "gpt-4o-mini", "api_key_env": KEY}}
HTTP = {"id": "crm", "kind": "http", "config": {"base_url": "https://crm.example.com"}}
IMAGE = {
    "id": "img",
    "kind": "openai_image",
    "config": {"model_name": "gpt-image-1", "api_key_env": KEY},
}


def flow_spec(upstream: list[dict[str, Any]], param: str, **db: Any) -> dict[str, Any]:
    """input → each upstream node → the db node `q` whose param `n` is `param`."""
    ids = ["input", *(n["id"] for n in upstream), "q"]
    return {
        "name": "flow",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            *upstream,
            {
                "id": "q",
                "type": "db",
                "metadata": {
                    "source": "db",
                    "query": "SELECT %(n)s AS n",
                    "params": {"n": param},
                    **db,
                },
            },
        ],
        "edges": [{"from": a, "to": b} for a, b in pairwise(ids)],
        "sources": [LLM, HTTP, IMAGE, {"id": "db", "kind": "sqlite", "config": {"path": "x.db"}}],
    }


ASK: dict[str, Any] = {
    "id": "ask",
    "type": "llm",
    "metadata": {"source": "gpt", "prompt": "{{ user_input }}"},
}
TAINTED = [
    ([ASK], "{{ text_result }}", "text_result"),
    ([ASK], "{{ outputs.ask }}", "outputs.ask"),
    ([ASK], "{{ outputs['ask'] | trim }}", "outputs.ask"),
    ([ASK], "{{ outputs[user_input] }}", "outputs.*"),
    (
        [{**ASK, "metadata": {**ASK["metadata"], "output_key": "customer_id"}}],
        "{{ customer_id }}",
        "customer_id",
    ),
    (
        [ASK, {"id": "agg", "type": "aggregator", "metadata": {"strategy": "merge"}}],
        "{{ final_output }}",
        "final_output",
    ),
    (
        [
            ASK,
            {
                "id": "pick",
                "type": "aggregator",
                "metadata": {
                    "strategy": "priority",
                    "order": ["text_result"],
                    "output_key": "choice",
                },
            },
            {
                "id": "fmt",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "{{ choice }}"},
            },
        ],
        "{{ final_output }}",
        "final_output",
    ),
    (
        [
            {
                "id": "route",
                "type": "router",
                "metadata": {
                    "strategy": "llm",
                    "source": "gpt",
                    "intents": {"a": "A", "b": "B"},
                    "default": "a",
                },
            }
        ],
        "{{ intent }}",
        "intent",
    ),
    (
        [{"id": "look", "type": "http", "metadata": {"source": "crm", "path": "/x"}}],
        "{{ http_result.body }}",
        "http_result",
    ),
    (
        [{"id": "draw", "type": "image", "metadata": {"source": "img", "prompt": "a cat"}}],
        "{{ image_result.url }}",
        "image_result",
    ),
]


@pytest.mark.parametrize(("upstream", "param", "read"), TAINTED)
def test_a_db_param_that_reads_a_models_or_a_servers_output_is_refused(
    executor: IssuedKey, upstream: list[dict[str, Any]], param: str, read: str
) -> None:
    spec = flow_spec(upstream, param)
    client = client_for(executor)

    validated = client.post(VALIDATE, spec, format="json").json()
    ran = client.post(EXECUTE, {"workflow": spec, "initial_state": {}}, format="json")

    assert validated["valid"] is False
    errors = [e for e in validated["errors"] if e["node_id"] == "q"]
    assert [e["type"] for e in errors] == ["invalid_metadata"], validated["errors"]
    assert errors[0]["path"] == f"/nodes/{len(upstream) + 1}/metadata/params/n"
    assert "'metadata.params.n'" in errors[0]["message"] and f"'{read}'" in errors[0]["message"]
    assert ran.status_code == 422
    assert "invalid_metadata" in json.dumps(ran.json())


@pytest.mark.parametrize(
    "param",
    [
        "{{ user_input }}",
        "{{ metadata.customer_email }}",
        "{{ outputs.input }}",
        "{% set text_result = 'x' %}{{ text_result }}",
    ],
)
def test_a_db_param_from_the_runs_input_validates(executor: IssuedKey, param: str) -> None:
    validated = client_for(executor).post(VALIDATE, flow_spec([ASK], param), format="json").json()

    assert validated["valid"] is True, validated
