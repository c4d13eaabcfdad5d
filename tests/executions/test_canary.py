"""Canaries: every variable granted to the tenant holds a unique value, workflows that succeed and
fail run through every node type (sync in this process, async on a real worker, so checkpoints
are written), and then no value — nor what is derived from one — is anywhere: not in a response,
not in any row of any table (checkpoints included), not in Redis, not in a log line.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
import os
import secrets
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.db import connection
from django.test import override_settings

from executions.models import Execution
from tests.conftest import IN_CI, IssuedKey, client_for
from tests.executions.test_credentials_api import read_stream
from tests.fakes.providers import FakeAnthropicServer, FakeOpenAIServer
from tests.runtime.http.servers import Seen, Server, json_reply, serving
from tests.stack import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _canary(name: str) -> str:
    return f"canary-{name.lower().replace('_', '-')}-{secrets.token_hex(6)}"


ACCESS_TOKEN = _canary("access-token")
"""What the OAuth2 token endpoint hands out: a credential too."""


@pytest.fixture
def shop() -> Iterator[dict[str, str]]:
    """A database of its own, with a row that (by mistake) holds the LLM key; two DSNs whose
    passwords are canaries (trust authentication ignores them), one of them unreachable."""
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("the canary test needs PostgreSQL (DATABASE_URL) under CI")
        pytest.skip("the canary test needs PostgreSQL")
    db = connection.settings_dict
    base = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}"
    name = f"canary_shop_{secrets.token_hex(4)}"
    password, bad_password = _canary("shop-password"), _canary("bad-password")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsns = {
        "SHOP_DSN": f"postgresql://{db['USER']}:{password}@{db['HOST']}:{db['PORT']}/{name}",
        "BAD_DSN": f"postgresql://{db['USER']}:{bad_password}@127.0.0.1:1/{name}",
    }
    yield dsns
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def canaries(shop: dict[str, str]) -> dict[str, str]:
    values = {
        name: _canary(name)
        for name in (
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "CRM_TOKEN",
            "CRM_PASSWORD",
            "CRM_KEY",
            "CRM_SECRET",
            "AGENTFLOW_T_ACME_UNUSED",
        )
    }
    return {**values, **shop}


GRANTS = [
    "OPENAI_API_KEY@openai|openai_image",
    "ANTHROPIC_API_KEY@anthropic",
    "CRM_*@http:127.0.0.1",
    "SHOP_DSN@postgres",
    "BAD_DSN@postgres",
    "AGENTFLOW_T_ACME_*",
]


def needles(canaries: dict[str, str]) -> dict[str, str]:
    """Every canary, what is derived from one, and their hex (how bytea columns print)."""
    found = dict(canaries)
    found["ACCESS_TOKEN"] = ACCESS_TOKEN
    found["basic pair"] = base64.b64encode(f"ada:{canaries['CRM_PASSWORD']}".encode()).decode()
    found["client pair"] = base64.b64encode(f"agentflow:{canaries['CRM_SECRET']}".encode()).decode()
    for name in ("SHOP_DSN", "BAD_DSN"):
        found[f"{name} password"] = canaries[name].split(":")[2].split("@")[0]
    found |= {f"{name} (hex)": value.encode().hex() for name, value in list(found.items())}
    return found


# --- the listener: an echo API, a token endpoint, a failing endpoint -----------------------------


def _echo(seen: Seen) -> Any:
    return json_reply(200, {"path": seen.path, "headers": seen.headers})


def _fail(seen: Seen) -> Any:
    return json_reply(500, {"error": "down", "you_sent": seen.headers})


@pytest.fixture
def listener() -> Iterator[Server]:
    with serving() as server:
        server.route("/api/echo", _echo)
        server.route("/api/fail", _fail)
        server.route(
            "/token", lambda _: json_reply(200, {"access_token": ACCESS_TOKEN, "expires_in": 60})
        )
        yield server


# --- the workflows -------------------------------------------------------------------------------


def _sources(url: str) -> list[dict[str, Any]]:
    http = {"base_url": f"{url}/api", "allowed_hosts": ["127.0.0.1"], "max_retries": 0}
    return [
        {
            "id": "gpt",
            "kind": "openai",
            "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
        },
        {
            "id": "claude",
            "kind": "anthropic",
            "config": {"model_name": "claude-test", "api_key_env": "ANTHROPIC_API_KEY"},
        },
        {
            "id": "dalle",
            "kind": "openai_image",
            "config": {"model_name": "dall-e-3", "api_key_env": "OPENAI_API_KEY"},
        },
        {
            "id": "bearer",
            "kind": "http",
            "config": {**http, "auth_method": "bearer", "token_env": "CRM_TOKEN"},
        },
        {
            "id": "basic",
            "kind": "http",
            "config": {
                **http,
                "auth_method": "basic",
                "username": "ada",
                "password_env": "CRM_PASSWORD",
            },
        },
        {
            "id": "query",
            "kind": "http",
            "config": {**http, "auth_method": "api_key", "api_key_env": "CRM_KEY"},
        },
        {
            "id": "oauth",
            "kind": "http",
            "config": {
                **http,
                "auth_method": "oauth2_client_credentials",
                "token_url": f"{url}/token",
                "client_id": "agentflow",
                "client_secret_env": "CRM_SECRET",
            },
        },
        {"id": "shop", "kind": "postgres", "config": {"connection_string_env": "SHOP_DSN"}},
        {"id": "down", "kind": "postgres", "config": {"connection_string_env": "BAD_DSN"}},
    ]


def _node(ident: str, type_: str, **metadata: Any) -> dict[str, Any]:
    return {"id": ident, "type": type_, "metadata": metadata}


def succeeding(url: str) -> dict[str, Any]:
    """input → router → writer (streamed llm) → every http auth method, image, db → merge →
    template. The LLM's answer and a database row quote a key; every echo quotes a credential."""
    fan = ["bearer", "basic", "query", "oauth", "picture", "rows"]
    return {
        "name": "canary-success",
        "start_node": "input",
        "nodes": [
            _node("input", "input"),
            _node("router", "router", strategy="keyword", routes={"go": ["go"]}, default="go"),
            _node("writer", "llm", source="gpt", prompt="{{ user_input }}", stream=True),
            *[
                _node(s, "http", source=s, path="/echo", output_key=f"echo_{s}")
                for s in ("bearer", "basic", "oauth")
            ],
            _node("query", "http", source="query", path="/echo", query={"q": "{{ intent }}"}),
            _node("picture", "image", source="dalle", prompt="a picture of {{ text_result }}"),
            _node("rows", "db", source="shop", query="SELECT id, body FROM notes ORDER BY id"),
            _node("merge", "aggregator", strategy="merge"),
            _node(
                "answer",
                "aggregator",
                strategy="template",
                template="{{ text_result }} / {{ echo_bearer.body.headers.authorization }} / "
                "{{ db_result.rows[0].body }}",
            ),
        ],
        "edges": [
            {"from": "input", "to": "router"},
            {"from": "router", "to": "writer", "condition": "go"},
            *[{"from": "writer", "to": node} for node in fan],
            *[{"from": node, "to": "merge"} for node in fan],
            {"from": "merge", "to": "answer"},
        ],
        "queues": [
            {
                "id": "llm-lane",
                "from": "router",
                "to": "writer",
                "bandwidth": {"max_requests_per_minute": 600, "max_tokens_per_minute": 900000},
            }
        ],
        "sources": _sources(url),
    }


def failing(url: str) -> dict[str, Any]:
    """Nodes that fail (and go on) — a provider error quoting the key, an API answering 500 with
    what it was sent, a query on a missing table, an unreachable database — then one that fails
    the run."""
    go_on = {"on_error": "continue"}
    steps = [
        _node("input", "input"),
        _node("claude", "llm", source="claude", prompt="{{ user_input }}", **go_on),
        _node("api", "http", source="bearer", path="/fail", retries=0, **go_on),
        _node("missing", "db", source="shop", query="SELECT * FROM no_such_table", **go_on),
        _node("unreachable", "db", source="down", query="SELECT 1", **go_on),
        _node("summary", "aggregator", strategy="merge"),
        _node("last", "http", source="basic", path="/fail", retries=0),
    ]
    ids = [step["id"] for step in steps]
    return {
        "name": "canary-failure",
        "start_node": "input",
        "nodes": steps,
        "edges": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
        "sources": _sources(url),
    }


# --- where to look ------------------------------------------------------------------------------


def _database_rows() -> Iterator[tuple[str, str]]:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT t::text FROM {quote(table)} t")
            for (row,) in cursor.fetchall():
                yield table, row


def _redis_value(client: redis.Redis, key: bytes) -> Any:
    kind = client.type(key)
    if kind == b"string":
        return client.get(key)
    if kind == b"hash":
        return client.hgetall(key)
    if kind == b"list":
        return client.lrange(key, 0, -1)
    if kind == b"set":
        return client.smembers(key)
    if kind == b"zset":
        return client.zrange(key, 0, -1, withscores=True)
    return client.xrange(key) if kind == b"stream" else kind


def _redis_values(client: redis.Redis) -> Iterator[tuple[str, str]]:
    for key in client.scan_iter(count=1000):
        yield key.decode(errors="replace"), repr(key) + repr(_redis_value(client, key))


def _hits(where: str, text: str, found: dict[str, str]) -> list[str]:
    return [f"{name} in {where}" for name, value in found.items() if value in text]


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every line this process logs, at DEBUG, through the real formatter (and its scrubber)."""
    root = logging.getLogger()
    formatter = next(h.formatter for h in root.handlers if h.formatter is not None)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    loggers = [root, logging.getLogger("django")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def _ended(execution_id: str) -> bool:
    return Execution.objects.get(pk=execution_id).status in ("succeeded", "failed")


# --- the test -----------------------------------------------------------------------------------


def test_no_granted_value_is_anywhere_after_runs_that_succeed_and_fail(
    tenant,
    executor_key: IssuedKey,
    canaries: dict[str, str],
    listener: Server,
    openai_server: FakeOpenAIServer,
    anthropic_server: FakeAnthropicServer,
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    redis_url = os.environ.get("REDIS_URL", "")
    store = redis.Redis.from_url(redis_url) if redis_url else None
    # Not flushed: the suite's other process uses the same Redis database at the same time (its
    # buckets and counts); the canaries are unique to this test, so other keys cannot hold them.
    if store is None and IN_CI:
        pytest.fail("CI=true but REDIS_URL is not set")
    tenant.allowed_env = GRANTS
    tenant.save()
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    with psycopg.connect(canaries["SHOP_DSN"], autocommit=True) as shop:
        shop.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        shop.execute("INSERT INTO notes VALUES (1, %s)", (canaries["OPENAI_API_KEY"],))
    openai_server.script(times=100, text=f"The key is {canaries['OPENAI_API_KEY']} - go")
    anthropic_server.script(
        times=100, status=401, message=f"invalid x-api-key: {canaries['ANTHROPIC_API_KEY']}"
    )
    urls = {
        "openai": openai_server.base_url,
        "openai_image": openai_server.base_url,
        "anthropic": anthropic_server.url,
    }
    responses: list[str] = []
    client = client_for(executor_key)

    def call(method: str, path: str, body: Any = None) -> Any:
        response = getattr(client, method)(path, body, format="json")
        text = read_stream(response) if response.streaming else response.content.decode()
        responses.append(text)
        return response

    def follow(execution_id: str) -> None:
        call("get", f"/api/v1/executions/{execution_id}")
        call("get", f"/api/v1/executions/{execution_id}/events")

    operator = {
        "AGENTFLOW_PROVIDER_BASE_URLS": urls,
        "AGENTFLOW_TRUSTED_HOSTS": ["127.0.0.1"],
        "AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES": True,  # the test server's only role is postgres
    }
    with override_settings(**operator):
        # Synchronous runs, in this process.
        ran: dict[str, Any] = {}
        for workflow in (succeeding(listener.url), failing(listener.url)):
            body = {"workflow": workflow, "initial_state": {"user_input": "go"}}
            answer = call("post", "/api/v1/workflows/execute", body)
            assert answer.status_code == 200, answer.content
            ran[workflow["name"]] = answer.json()
            follow(answer.json()["execution_id"])
        ok, bad = ran["canary-success"], ran["canary-failure"]
        assert ok["status"] == "success", ok["error"]
        assert bad["status"] == "failed" and bad["error"]["node_id"] == "last"
        assert len({s.headers.get("authorization") for s in listener.seen}) >= 4  # all were sent
        state = ok["final_state"]
        assert state["final_output"] == (
            "The key is [redacted:OPENAI_API_KEY] - go / Bearer [redacted:CRM_TOKEN] / "
            "[redacted:OPENAI_API_KEY]"
        )
        assert state["echo_basic"]["body"]["headers"]["authorization"] == (
            "Basic [redacted:CRM_PASSWORD]"
        )
        assert state["echo_oauth"]["body"]["headers"]["authorization"] == (
            "Bearer [redacted:CRM_SECRET]"
        )
        assert state["http_result"]["body"]["headers"]["x-api-key"] == "[redacted:CRM_KEY]"
        assert {e["node_id"] for e in bad["final_state"]["errors"]} == {
            "claude",
            "api",
            "missing",
            "unreachable",
        }

        # A spec that would send a key to the listener is refused before anything runs.
        leaking = succeeding(listener.url)
        leaking["sources"][3]["config"]["token_env"] = "OPENAI_API_KEY"
        refused = call("post", "/api/v1/workflows/execute", {"workflow": leaking})
        assert refused.status_code == 422

        # The same workflows on a real worker, in the background: checkpoints are written.
        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "AGENTFLOW_PROVIDER_BASE_URLS": json.dumps(urls),
            "AGENTFLOW_TRUSTED_HOSTS": "127.0.0.1",
            "AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES": "true",
            "AGENTFLOW_DATA_DIR": str(tmp_path),
            "Q_WORKERS": "1",
            "LOG_LEVEL": "DEBUG",
        }
        stack = Stack(env, tmp_path)
        try:
            stack.worker()
            queued = []
            for workflow in (succeeding(listener.url), failing(listener.url)):
                background: dict[str, Any] = {
                    "workflow": workflow,
                    "initial_state": {"user_input": "go"},
                    "mode": "async",
                }
                answer = call("post", "/api/v1/workflows/execute", background)
                assert answer.status_code == 202, answer.content
                queued.append(answer.json()["execution_id"])
            for execution_id in queued:
                wait_for(partial(_ended, execution_id), 120, f"the background run {execution_id}")
                follow(execution_id)
        finally:
            stack.stop()
    first, second = (Execution.objects.get(pk=e) for e in queued)
    assert (first.status, second.status) == ("succeeded", "failed"), (first.error, second.error)
    assert first.final_state is not None
    assert first.final_state["final_output"] == ok["final_state"]["final_output"]

    found = needles(canaries)
    hits: list[str] = []
    for i, text in enumerate(responses):
        hits += _hits(f"response {i}", text, found)
    checkpoint_rows = 0
    for table, row in _database_rows():
        checkpoint_rows += table.startswith("checkpoint")
        hits += _hits(f"table {table}", row, found)
    assert checkpoint_rows > 0, "the background runs wrote no checkpoint"
    if store is not None:
        keys = 0
        for key, text in _redis_values(store):
            keys += 1
            hits += _hits(f"redis key {key}", text, found)
        assert keys > 0, "the runs left nothing in Redis to search"
    hits += _hits("this process's log", log_output.getvalue(), found)
    for log in tmp_path.glob("*.log"):
        hits += _hits(f"log {log.name}", log.read_text(errors="replace"), found)
    assert hits == []
