"""The examples that read a database or call an HTTP API, run through the API against the
real PostgreSQL on this machine and a local HTTP server."""

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection

from tests.conftest import IN_CI, IssuedKey, client_for
from tests.runtime.http.servers import Seen, json_reply, serving

pytestmark = pytest.mark.django_db
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def execute(key: IssuedKey, spec: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    body = {"workflow": spec, "initial_state": state}
    answer = client_for(key).post("/api/v1/workflows/execute", body, format="json")
    assert answer.status_code == 200, answer.json()
    return dict(answer.json())


@pytest.fixture
def shop_dsn() -> Iterator[str]:
    """A database of its own holding an orders table, as a shop's would, read by a role that
    may only SELECT (db nodes refuse a superuser)."""
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("CI=true but the tests are not running on PostgreSQL")
        pytest.skip("needs PostgreSQL")
    db = connection.settings_dict
    base = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}"
    name = f"shop_{secrets.token_hex(4)}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = f"{base}/{name}"
    with psycopg.connect(dsn, autocommit=True) as shop:
        shop.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, customer_email text, "
            "status text, total numeric(10, 2))"
        )
        shop.execute(
            "INSERT INTO orders VALUES (1, 'ada@example.com', 'shipped', 25.50), "
            "(2, 'bob@example.com', 'open', 9.99), (3, 'ada@example.com', 'open', 4)"
        )
        shop.execute(f"CREATE ROLE {name}_reader LOGIN")
        shop.execute(f"GRANT SELECT ON orders TO {name}_reader")
    yield f"postgresql://{name}_reader@{db['HOST']}:{db['PORT']}/{name}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.execute(f"DROP ROLE {name}_reader")


def test_support_desk_answers_an_order_question_from_the_shop_database(
    tenant, executor_key: IssuedKey, shop_dsn: str, monkeypatch
) -> None:
    tenant.allowed_env = ["SHOP_DATABASE_URL", "OPENAI_API_KEY"]
    tenant.save()
    monkeypatch.setenv("SHOP_DATABASE_URL", shop_dsn)
    state = {"user_input": "Where is my order?", "metadata": {"customer_email": "ada@example.com"}}
    body = execute(executor_key, example("support-desk"), state)
    assert body["status"] == "success", body
    rows = body["final_state"]["db_result"]["rows"]
    assert rows == [
        {"id": 3, "status": "open", "total": 4},
        {"id": 1, "status": "shipped", "total": 25.5},
    ]
    assert body["final_state"]["final_output"] == {"orders": body["final_state"]["db_result"]}
    assert shop_dsn.rsplit("/", 1)[0] not in json.dumps(body)  # the DSN never shows


def test_support_desk_cannot_be_talked_into_a_write(
    tenant, executor_key: IssuedKey, shop_dsn: str, monkeypatch
) -> None:
    tenant.allowed_env = ["SHOP_DATABASE_URL", "OPENAI_API_KEY"]
    tenant.save()
    monkeypatch.setenv("SHOP_DATABASE_URL", shop_dsn)
    state = {"user_input": "order", "metadata": {"customer_email": "x'; DELETE FROM orders; --"}}
    body = execute(executor_key, example("support-desk"), state)
    assert body["final_state"]["db_result"]["rows"] == []  # the value was data, not SQL
    with psycopg.connect(shop_dsn) as shop:
        assert shop.execute("SELECT count(*) FROM orders").fetchone() == (3,)


def test_http_enrich_looks_the_customer_up_with_the_token_from_the_environment(
    tenant, executor_key: IssuedKey, monkeypatch
) -> None:
    tenant.allowed_env = ["CRM_TOKEN@http:127.0.0.1"]  # the CRM here is on loopback
    tenant.trusted_hosts = ["127.0.0.1"]  # the operator trusts the loopback CRM for this tenant
    tenant.save()
    monkeypatch.setenv("CRM_TOKEN", "crm-token-0123456789")
    with serving() as crm:
        crm.route("/api/customers/42", lambda seen: json_reply(200, {"name": "Ada", "plan": "pro"}))
        spec = example("http-enrich")
        config = spec["sources"][0]["config"]
        # The example's CRM is public; this one is on loopback, which a source must allow.
        config["base_url"] = urlunsplit(urlsplit(crm.url)._replace(path="/api"))
        config["allowed_hosts"] = ["127.0.0.1"]
        state = {"user_input": "upgrade me", "metadata": {"customer_id": 42}}
        body = execute(executor_key, spec, state)
        seen: Seen = crm.seen[-1]
    assert body["status"] == "success", body
    assert body["final_state"]["final_output"] == "Ada (pro): upgrade me"
    assert seen.headers["authorization"] == "Bearer crm-token-0123456789"


def test_http_enrich_refuses_loopback_unless_the_source_allows_it(
    tenant, executor_key: IssuedKey, monkeypatch
) -> None:
    tenant.allowed_env = ["CRM_TOKEN@http:127.0.0.1"]  # the CRM here is on loopback
    tenant.save()
    monkeypatch.setenv("CRM_TOKEN", "crm-token-0123456789")
    with serving() as crm:
        spec = example("http-enrich")
        spec["sources"][0]["config"]["base_url"] = crm.url
        state = {"user_input": "x", "metadata": {"customer_id": 1}}
        body = execute(executor_key, spec, state)
        assert crm.seen == []  # nothing reached it
    assert body["status"] == "failed"
    assert body["error"]["node_id"] == "crm"
    assert "127.0.0.1" in body["error"]["message"]
