"""Error tracking as an operator sees it: a real AgentFlow (uvicorn and a run worker) reporting to
a local endpoint that records Sentry envelopes. AgentFlow's own failures arrive tagged and with
no credential in them; a tenant's own mistakes do not arrive at all."""

import gzip
import json
import secrets
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx2
import pytest
import sentry_sdk
from django.db import connection

from agentflow_site.logging import REDACTED
from agentflow_site.observability.errors import SentryConfig, init_sentry
from executions.models import Execution
from tenants.models import Role
from tenants.services import tenant_create
from tests.conftest import issue_key
from tests.observability.crashing import CANARY_ENV
from tests.runtime.http.servers import Seen, Server, json_reply, serving
from tests.stack import Stack, stack_env, wait_for

URL = "/api/v1/workflows/execute"
TRIGGER = "h17e_vault_trigger"


class Recorder:
    """What a Sentry server at `dsn` was sent: whole envelopes, and the events in them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        server.route("/api/1/envelope/", lambda _: json_reply(200, {}))

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.port}/1"

    def envelopes(self) -> list[bytes]:
        return [_body(seen) for seen in list(self.server.seen)]

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(payload)
            for raw in self.envelopes()
            for header, payload in _items(raw)
            if header.get("type") == "event"
        ]


def _body(seen: Seen) -> bytes:
    gzipped = seen.headers.get("content-encoding") == "gzip"
    return gzip.decompress(seen.body) if gzipped else seen.body


def _items(raw: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """The items of an envelope: a header line, then each item's header line and payload."""
    _, _, rest = raw.partition(b"\n")
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        yield header, payload


@pytest.fixture
def sentry() -> Iterator[Recorder]:
    with serving() as server:
        yield Recorder(server)


def _node(ident: str, type_: str, **metadata: Any) -> dict[str, Any]:
    return {"id": ident, "type": type_, "metadata": metadata}


def exploding(name: str = "vault-lookup") -> dict[str, Any]:
    """input → an operator's aggregation function with a bug: AgentFlow's fault."""
    boom = _node("boom", "aggregator", strategy="function", function="explode")
    return {
        "name": name,
        "start_node": "input",
        "nodes": [_node("input", "input"), boom],
        "edges": [{"from": "input", "to": "boom"}],
    }


def needs_ticket() -> dict[str, Any]:
    """A run whose input lacks what its input node requires: the tenant's fault."""
    answer = _node("answer", "aggregator", strategy="template", template="{{ ticket }}")
    return {
        "name": "needs-ticket",
        "start_node": "input",
        "nodes": [_node("input", "input", required=["ticket"]), answer],
        "edges": [{"from": "input", "to": "answer"}],
    }


def _vault_trigger(canary: str) -> None:
    """Inserting an execution whose initial state asks for it fails with a database error that
    quotes a credential: an unhandled error in the execute view."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger AS $$
            BEGIN
                IF NEW.initial_state ? 'explode' THEN
                    RAISE EXCEPTION 'vault said no to %', '{canary}';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER {TRIGGER} BEFORE INSERT ON executions_execution
                FOR EACH ROW EXECUTE FUNCTION {TRIGGER}();
            """
        )


def _drop_vault_trigger() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON executions_execution")
        cursor.execute(f"DROP FUNCTION IF EXISTS {TRIGGER}()")


def _ended(execution_id: str) -> bool:
    return Execution.objects.filter(pk=execution_id, finished_at__isnull=False).exists()


def _summary(event: dict[str, Any]) -> tuple[Any, ...]:
    raised = event.get("exception", {}).get("values", [{}])[-1]
    return event.get("tags"), raised.get("type"), raised.get("value"), event.get("message")


def _by_tag(events: list[dict[str, Any]], name: str, value: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("tags", {}).get(name) == value]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_agentflows_own_failures_reach_sentry_tagged_and_scrubbed_and_tenant_faults_do_not(
    sentry: Recorder, tmp_path
) -> None:
    tenant = tenant_create(slug="acme", name="Acme", allowed_env=["AGENTFLOW_T_ACME_*"])
    key = issue_key(tenant, Role.EXECUTOR)
    canary, bearer = f"canary-{secrets.token_hex(8)}", f"canary-bearer-{secrets.token_hex(8)}"
    env = stack_env(
        tmp_path,
        SENTRY_DSN=sentry.dsn,
        SENTRY_ENVIRONMENT="test",
        AGENTFLOW_AGGREGATIONS=json.dumps({"explode": "tests.observability.crashing.explode"}),
    )
    env[CANARY_ENV] = canary
    _vault_trigger(canary)
    stack = Stack(env, tmp_path)
    try:
        stack.web()
        stack.worker()
        http = httpx2.Client(base_url=stack.url, headers={"X-API-Key": key.secret}, timeout=60)

        def post(request_id: str, body: dict[str, Any], **headers: str) -> httpx2.Response:
            return http.post(URL, json=body, headers={"X-Request-ID": request_id, **headers})

        # The tenant's own mistakes: a bad spec, a run whose input misses a field (sync, async).
        assert post("req-bad-spec", {"workflow": {"name": "x"}}).status_code == 422
        bad_sync = post("req-bad-input", {"workflow": needs_ticket()}).json()
        assert bad_sync["error"]["code"] == "invalid_input"
        bad_async = post("req-bad-async", {"workflow": needs_ticket(), "mode": "async"}).json()

        # AgentFlow's: an unhandled error in a view, a run that crashes (sync and async).
        crash_state = {"user_input": f"use {key.secret}", "explode": True}
        web = post(
            "req-web-crash",
            {"workflow": needs_ticket(), "initial_state": crash_state},
            Authorization=f"Bearer {bearer}",
        )
        assert web.status_code == 500
        state = {"user_input": key.secret}
        sync = post("req-sync-crash", {"workflow": exploding(), "initial_state": state}).json()
        assert sync["error"]["code"] == "internal_error"
        queued = post(
            "req-async-crash", {"workflow": exploding(), "initial_state": state, "mode": "async"}
        ).json()
        for execution_id in (bad_async["execution_id"], queued["execution_id"]):
            wait_for(partial(_ended, execution_id), 60, f"the background run {execution_id}")
        wait_for(lambda: len(sentry.events()) >= 3, 60, "three events at the Sentry endpoint")
        time.sleep(3)  # whatever else was going to be sent
    finally:
        stack.stop()
        _drop_vault_trigger()

    events = sentry.events()
    tenant_fault = Execution.objects.get(pk=bad_async["execution_id"]).error or {}
    assert tenant_fault["code"] == "invalid_input"

    [web_event] = _by_tag(events, "request_id", "req-web-crash")
    assert web_event["tags"]["tenant"] == "acme"
    assert web_event["environment"] == "test"
    raised = web_event["exception"]["values"][-1]
    assert raised["value"].startswith("vault said no to [redacted")  # masked, as in the logs
    assert web_event["request"]["url"].endswith(URL)
    assert not any("vars" in frame for frame in raised["stacktrace"]["frames"])  # off by default

    [sync_event] = _by_tag(events, "execution_id", sync["execution_id"])
    assert sync_event["tags"]["tenant"] == "acme"
    assert sync_event["tags"]["request_id"] == "req-sync-crash"
    assert sync_event["tags"]["run_error"] == "internal_error"
    assert sync_event["contexts"]["run"]["node_id"] == "boom"

    [async_event] = _by_tag(events, "execution_id", queued["execution_id"])
    assert async_event["tags"]["tenant"] == "acme"
    assert async_event["tags"]["run_error"] == "internal_error"
    assert "RuntimeError" in async_event["contexts"]["run"]["message"]

    # Nothing else: no event for the tenant's own mistakes.
    assert len(events) == 3, [_summary(e) for e in events]

    # The request's body and headers are there, scrubbed; SQL breadcrumbs carry no parameters.
    assert web_event["request"]["data"]["initial_state"]["user_input"] == f"use {REDACTED}"
    assert web_event["request"]["headers"]["authorization"] == REDACTED
    crumbs = [c for e in events for c in e.get("breadcrumbs", {}).get("values", [])]
    assert any(c.get("category") == "query" for c in crumbs)
    assert not any("db.params" in (c.get("data") or {}) for c in crumbs)

    # No credential anywhere in what was sent: not the key (in a header and in the body), not
    # the Authorization header, not the granted variable's value (in an exception's text).
    sent = b"".join(sentry.envelopes())
    for secret in (key.secret, key.secret.partition(".")[2], bearer, canary):
        assert secret.encode() not in sent


def test_local_variables_when_turned_on_are_scrubbed_too(sentry: Recorder, monkeypatch) -> None:
    """In-process: an exception whose frame holds a credential, with local variables on."""
    secret = f"canary-{secrets.token_hex(8)}"
    monkeypatch.setenv("ACME_DB_PASSWORD", secret)
    init_sentry(SentryConfig(sentry.dsn, "test", "agentflow@test", include_local_variables=True))
    try:
        _fail_with_a_secret_in_scope(secret)
        sentry_sdk.flush(timeout=10)
        wait_for(lambda: sentry.events(), 30, "the event")
    finally:
        sentry_sdk.get_client().close(timeout=5)
        sentry_sdk.init()  # no DSN: off again for the rest of this process
    [event] = sentry.events()
    frame = event["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert frame["function"] == "_fail_with_a_secret_in_scope"
    assert frame["vars"]["api_key"] == REDACTED  # by its name
    assert secret not in frame["vars"]["config"]  # by its value
    assert secret.encode() not in b"".join(sentry.envelopes())


def _fail_with_a_secret_in_scope(secret: str) -> None:
    api_key = "a3Fq9ZbX.abcdefghijklmnopqrstuvwxyz012345"
    config = f"postgresql://app:{secret}@db/app"
    try:
        raise ValueError(f"could not connect with {config} and {api_key}")
    except ValueError as exc:
        sentry_sdk.capture_exception(exc)
