"""No input gets a 500 (issue 14): a malformed, oversized, out-of-range or unstorable input, on
any route, is a 4xx problem+json naming the field, and nothing is half-written.

The routes come from /api/schema/, so a new one is covered without anyone remembering to. The
Django test client sends most cases; a chunked body, and one too large to be read, go to a real
uvicorn (the test client can send neither).
"""

import base64
import json
import os
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone as django_timezone
from rest_framework.test import APIClient

from executions.models import Execution
from schedules.models import Schedule
from sources.models import Source, SourceVersion
from tenants.models import ApiKey, AuditEvent, Tenant
from tests.conftest import IN_CI, IssuedKey, client_for, issue_key
from tests.stack import Stack
from workflows.models import Workflow, WorkflowVersion
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db
API = "/api/v1"
PROBLEM = "application/problem+json"
METHODS = ("get", "post", "put", "patch", "delete")
SPEC: dict[str, Any] = {
    "name": "mine",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {"id": "say", "type": "aggregator", "metadata": {"strategy": "template", "template": "x"}},
    ],
    "edges": [{"from": "input", "to": "say"}],
}
DEEP = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER = "9" * 5000
# Neither is an ASCII digit, though str.isdigit() says both are.
NOT_ASCII_DIGITS = ("²", "٣")
OFFSET_17 = timezone(timedelta(hours=17))


@pytest.fixture
def mine(tenant: Tenant, admin_key: IssuedKey) -> dict[str, str]:
    """One of everything, owned by the caller's tenant; path parameter name → its value."""
    workflow = workflow_create(tenant=tenant, spec=SPEC, actor="key:setup")
    source = Source.objects.create(
        tenant=tenant, name="gpt", kind="openai", config={"model_name": "m"}
    )
    SourceVersion.objects.create(source=source, version=1, kind="openai", config=source.config)
    execution = Execution.objects.create(
        tenant=tenant, workflow=workflow, spec=SPEC, spec_digest="", workflow_name="mine"
    )
    schedule = Schedule.objects.create(tenant=tenant, workflow=workflow, cron="@hourly")
    return {
        "workflow_id": workflow.id,
        "source_id": source.id,
        "execution_id": execution.id,
        "schedule_id": schedule.id,
        "prefix": issue_key(tenant, "viewer", name="spare").prefix,
        "name": "0123456789abcdef.png",
        "version": "1",
        "to_version": "1",
    }


def operations(api: APIClient) -> list[tuple[str, str, bool]]:
    """Every (path, method, takes a body) the OpenAPI document lists."""
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    found = [
        (path, method, "requestBody" in operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in METHODS
    ]
    assert len(found) > 20, "the schema lists fewer routes than the API has"
    return found


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m[1]], path)


def state() -> dict[str, Any]:
    """What a refused request must leave as it was."""
    return {
        "rows": [
            model.objects.count()
            for model in (
                Workflow,
                WorkflowVersion,
                Source,
                SourceVersion,
                Execution,
                ApiKey,
                Schedule,
            )
        ],
        "audit": AuditEvent.objects.count(),
        "specs": list(Workflow.objects.values_list("id", "version", "spec").order_by("id")),
        "sources": list(Source.objects.values_list("id", "version", "config").order_by("id")),
        "budgets": list(Tenant.objects.values_list("daily_token_budget", "daily_cost_budget")),
    }


def send(client: APIClient, method: str, url: str, text: str) -> Any:
    call: Callable[..., Any] = getattr(client, method)
    return call(url, text, content_type="application/json")


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert "{" not in body["title"], body["title"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


# --- 1 and 6: nesting -------------------------------------------------------------------------


def test_a_body_nested_100000_deep_is_a_400_on_every_route_that_takes_one(
    api: APIClient, admin_key: IssuedKey, mine: dict[str, str]
) -> None:
    admin, before, checked = client_for(admin_key), state(), 0
    for path, method, takes_body in operations(api):
        if not takes_body:
            continue
        response = send(admin, method, fill(path, mine), DEEP)
        if path == f"{API}/workflows/validate":  # its answer to any JSON is a report
            assert response.status_code == 200
            assert response.json()["errors"][0]["type"] == "spec_too_large"
            continue
        if path == f"{API}/workflows/graph":  # validated as /validate does: its errors, a 422
            assert response.status_code == 422
            assert response.json()["errors"][0]["type"] == "spec_too_large"
            continue
        body = assert_problem(response, 400, field="")
        assert "nest at most 100" in body["errors"][0]["message"]
        checked += 1
    assert checked >= 9
    assert state() == before


def test_a_merge_patch_nested_3000_deep_is_a_400_and_changes_nothing(
    developer_key: IssuedKey, mine: dict[str, str]
) -> None:
    url = f"{API}/workflows/{mine['workflow_id']}"
    before = state()
    deep = '{"spec": {"description": ' + "[" * 3000 + "]" * 3000 + "}}"
    response = send(client_for(developer_key), "patch", url, deep)
    assert_problem(response, 400, field="spec.description" + ".0" * 98)  # says where
    nested: Any = "x"
    for _ in range(3000):
        nested = {"a": nested}
    response = client_for(developer_key).patch(url, {"spec": nested}, format="json")
    assert_problem(response, 400, field="spec" + ".a" * 99)
    assert state() == before


# --- 2: text PostgreSQL cannot store -----------------------------------------------------------


def _spec_with(**changes: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(SPEC))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = spec
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return spec


UNSTORABLE = [
    pytest.param(
        "post",
        "/workflows",
        {"spec": _spec_with(description="a\x00b")},
        "spec.description",
        id="nul-in-a-spec-description",
    ),
    pytest.param(
        "post",
        "/workflows",
        {"spec": _spec_with(nodes__1__metadata__template="{{ x }}\ud800")},
        "spec.nodes.1.metadata.template",
        id="surrogate-in-a-template",
    ),
    pytest.param(
        "put",
        "/workflows/{workflow_id}",
        {"spec": _spec_with(name="mine\x00")},
        "spec.name",
        id="nul-in-a-spec-name-on-put",
    ),
    pytest.param(
        "patch",
        "/workflows/{workflow_id}",
        {"spec": {"description": "\udfff"}},
        "spec.description",
        id="surrogate-in-a-merge-patch",
    ),
    pytest.param(
        "post",
        "/workflows/execute",
        {"workflow": SPEC, "initial_state": {"user_input": "hi\x00"}},
        "initial_state.user_input",
        id="nul-in-initial-state",
    ),
    pytest.param(
        "post",
        "/workflows/{workflow_id}/execute",
        {"initial_state": {"k\x00": 1}},
        "initial_state.k\x00",
        id="nul-in-an-initial-state-key",
    ),
    pytest.param(
        "post",
        "/workflows/execute",
        {"workflow": SPEC, "initial_state": {"n": 1e400}},
        "initial_state.n",
        id="a-number-that-overflows-to-infinity",
    ),
    pytest.param(
        "post",
        "/sources",
        {"name": "s", "kind": "openai", "config": {"model_name": "m\x00"}},
        "config.model_name",
        id="nul-in-a-source-config",
    ),
    pytest.param(
        "patch",
        "/sources/{source_id}",
        {"description": "\ud800"},
        "description",
        id="surrogate-in-a-source-description",
    ),
    pytest.param(
        "post", "/keys", {"name": "k\x00", "role": "viewer"}, "name", id="nul-in-a-key-name"
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), UNSTORABLE)
def test_text_or_a_number_postgresql_refuses_is_a_400_naming_it(
    admin_key: IssuedKey, mine: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    before = state()
    # json.dumps writes NUL and lone surrogates as \u escapes, and 1e400 as Infinity: a client
    # sends the number as digits.
    text = json.dumps(body).replace("Infinity", "1e400")
    response = send(client_for(admin_key), method, API + fill(path, mine), text)
    assert_problem(response, 400, field=field)
    assert state() == before


def test_validation_reports_unstorable_text_where_it_is(viewer_key: IssuedKey) -> None:
    validate = f"{API}/workflows/validate"
    for body, path in [
        (_spec_with(description="a\x00b"), "/description"),
        ({"spec": _spec_with(nodes__1__metadata__template="\ud800")}, "/nodes/1/metadata/template"),
    ]:
        response = send(client_for(viewer_key), "post", validate, json.dumps(body, indent=1))
        assert response.status_code == 200
        report = response.json()
        assert report["valid"] is False
        [error] = report["errors"]
        assert (error["type"], error["path"]) == ("schema", path)
        assert error["line"] is not None


# --- 3: time offsets ----------------------------------------------------------------------------


TIME_FILTERS = [
    ("/workflows", "created_after", "created_before"),
    ("/executions", "created_after", "created_before"),
    ("/audit", "after", "before"),
]


@pytest.mark.parametrize(("path", "after", "before"), TIME_FILTERS)
def test_a_time_offset_postgresql_refuses_is_read_in_utc(
    admin_key: IssuedKey, mine: dict[str, str], path: str, after: str, before: str
) -> None:
    admin = client_for(admin_key)
    assert admin.get(API + path, {after: "2026-01-01T00:00:00+17:00"}).status_code == 200
    later = (django_timezone.now() + timedelta(hours=1)).astimezone(OFFSET_17).isoformat()
    assert admin.get(API + path, {after: later}).json()["results"] == []
    assert admin.get(API + path, {before: later}).json()["results"] != []
    # Sent unencoded, the + of the offset arrives as a space: still that offset.
    unencoded = admin.get(f"{API}{path}?{after}={later}")
    assert unencoded.status_code == 200
    assert unencoded.json()["results"] == []


@pytest.mark.parametrize(("path", "after", "before"), TIME_FILTERS)
@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+17:00", "9999-12-31T23:59:59-17:00", "yesterday", "2026-13-01"]
)
def test_a_time_that_is_not_one_in_utc_is_a_400_naming_the_filter(
    admin_key: IssuedKey, path: str, after: str, before: str, value: str
) -> None:
    for name in (after, before):
        assert_problem(client_for(admin_key).get(API + path, {name: value}), 400, field=name)


# --- 4: cursors ---------------------------------------------------------------------------------


def _cursor(query: str) -> str:
    """A cursor as DRF spells one: base64 of a query string (`p=…` the position)."""
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize("path", ["/executions", "/audit", "/workflows/{workflow_id}/executions"])
@pytest.mark.parametrize(
    "cursor",
    [
        "cD14eHg=",  # p=xxx
        _cursor("p=2026-13-01 00:00:00+00:00"),
        _cursor("p=2026-01-01 00:00:00"),  # no offset: which instant is unknown
        _cursor("p=0001-01-01 00:00:00+17:00"),
        _cursor(f"o={HUGE_NUMBER}"),
        _cursor(f"r={HUGE_NUMBER}"),
        "²",
        "not base64!",
    ],
)
def test_a_forged_cursor_is_a_404(
    admin_key: IssuedKey, mine: dict[str, str], path: str, cursor: str
) -> None:
    response = client_for(admin_key).get(API + fill(path, mine), {"cursor": cursor})
    assert_problem(response, 404)
    assert response.json()["detail"] == "Invalid cursor"


@pytest.mark.parametrize("path", ["/executions", "/audit"])
def test_a_cursor_whose_offset_postgresql_refuses_is_read_in_utc(
    admin_key: IssuedKey, mine: dict[str, str], path: str
) -> None:
    later = (django_timezone.now() + timedelta(hours=1)).astimezone(OFFSET_17)
    cursor = _cursor(urlencode({"p": later.isoformat(sep=" ")}))
    response = client_for(admin_key).get(API + path, {"cursor": cursor})
    assert response.status_code == 200
    assert response.json()["results"] != []  # newest first: everything is before `later`


# --- 5: numbers in queries and headers ----------------------------------------------------------


@pytest.mark.parametrize("value", [*NOT_ASCII_DIGITS, HUGE_NUMBER, "0", "91", "-1", "7.0", ""])
def test_usage_days_is_ascii_digits_from_1_to_90(admin_key: IssuedKey, value: str) -> None:
    response = client_for(admin_key).get(f"{API}/usage", {"days": value})
    assert_problem(response, 400, field="days")
    assert client_for(admin_key).get(f"{API}/usage", {"days": "090"}).status_code == 200


@pytest.mark.parametrize("value", [*NOT_ASCII_DIGITS, HUGE_NUMBER, "-1", "1e3"])
def test_a_last_event_id_that_is_not_a_number_is_a_400_naming_it(
    admin_key: IssuedKey, mine: dict[str, str], value: str
) -> None:
    url = f"{API}/executions/{mine['execution_id']}/events"
    admin = client_for(admin_key)
    assert_problem(admin.get(url, {"last_event_id": value}), 400, field="last_event_id")
    header = value.encode().decode("latin-1")  # how a server hands Django a header's bytes
    assert_problem(admin.get(url, HTTP_LAST_EVENT_ID=header), 400, field="Last-Event-ID")


@pytest.mark.parametrize("path", ["/workflows", "/executions", "/audit", "/sources", "/keys"])
@pytest.mark.parametrize("value", [*NOT_ASCII_DIGITS, HUGE_NUMBER, "0", "201", "ten"])
def test_a_page_size_out_of_1_to_200_is_a_400_naming_it(
    admin_key: IssuedKey, path: str, value: str
) -> None:
    assert_problem(client_for(admin_key).get(API + path, {"page_size": value}), 400, "page_size")


# --- 7: out of range for the column --------------------------------------------------------------


def test_a_daily_token_budget_past_a_bigint_is_a_400_and_the_largest_is_kept(
    admin_key: IssuedKey, tenant: Tenant
) -> None:
    admin = client_for(admin_key)
    too_big = '{"daily_tokens": 9223372036854775808, "daily_cost": null}'
    assert_problem(send(admin, "put", f"{API}/budget", too_big), 400, field="daily_tokens")
    tenant.refresh_from_db()
    assert tenant.daily_token_budget is None
    largest = '{"daily_tokens": 9223372036854775807, "daily_cost": null}'
    assert send(admin, "put", f"{API}/budget", largest).json()["daily_tokens"] == 2**63 - 1


@pytest.mark.parametrize(
    "body",
    [
        {"version": 2**31},
        {"version": int(HUGE_NUMBER[:4000])},
        {"timeout_seconds": HUGE_NUMBER, "mode": "async"},
    ],
)
def test_a_number_past_its_column_on_execute_is_a_400(
    executor_key: IssuedKey, mine: dict[str, str], body: dict[str, Any]
) -> None:
    before = state()
    url = f"{API}/workflows/{mine['workflow_id']}/execute"
    response = client_for(executor_key).post(url, body, format="json")
    assert_problem(response, 400, field=next(iter(body)))
    assert state() == before


def test_a_rate_limit_longer_than_its_column_is_a_400(admin_key: IssuedKey) -> None:
    before = state()
    body = {"name": "k", "role": "viewer", "rate_limit": "1/" + "m" * 198}
    response = client_for(admin_key).post(f"{API}/keys", body, format="json")
    assert_problem(response, 400, field="rate_limit")
    assert state() == before


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("prefix", ["%00", "a%00b", "%C2%B2", "x" * 65])
def test_a_key_prefix_that_cannot_exist_is_a_404(
    admin_key: IssuedKey, method: str, prefix: str
) -> None:
    suffix = "" if method == "get" else "/revoke"
    response = getattr(client_for(admin_key), method)(f"{API}/keys/{prefix}{suffix}")
    assert_problem(response, 404)


def test_a_key_whose_prefix_cannot_exist_is_a_401_or_a_400_naming_the_header(
    api: APIClient,
) -> None:
    for key in ("ab/cd.secret", "\u00e9t\u00e9.secret", "x" * 65 + ".secret"):
        assert_problem(api.get(f"{API}/me", HTTP_X_API_KEY=key), 401)
    response = api.get(f"{API}/me", HTTP_X_API_KEY="ab\x00cd.secret")
    assert_problem(response, 400, field="X-Api-Key")


# --- NUL in the query, on every route -------------------------------------------------------------


@pytest.mark.parametrize("name", ["name", "workflow", "actor", "status", "zzz"])
def test_a_nul_in_any_query_parameter_is_a_400_naming_it(
    api: APIClient, admin_key: IssuedKey, mine: dict[str, str], name: str
) -> None:
    admin = client_for(admin_key)
    for path, method, _ in operations(api):
        if method == "get":
            response = admin.get(fill(path, mine), {name: "a\x00b"})
            assert_problem(response, 400, field=name)


def test_a_nul_in_a_header_is_a_400_naming_it(admin_key: IssuedKey) -> None:
    response = client_for(admin_key).get(f"{API}/me", HTTP_IDEMPOTENCY_KEY="a\x00")
    assert_problem(response, 400, field="Idempotency-Key")


# --- every hostile query on every read -----------------------------------------------------------

HOSTILE_QUERIES: list[dict[str, str]] = [
    {"page": "²"},
    {"page": HUGE_NUMBER},
    {"page_size": "²"},
    {"cursor": "cD14eHg="},
    {"created_after": "2026-01-01T00:00:00+17:00"},
    {"after": "0001-01-01T00:00:00+17:00"},
    {"days": HUGE_NUMBER},
    {"status": "\u00e9" * 100},
    {"workflow": "wf_" + "f" * 5000},
    {"name": "%" * 3000},
]


def test_no_read_answers_a_hostile_query_with_a_500(
    api: APIClient, admin_key: IssuedKey, mine: dict[str, str]
) -> None:
    admin = client_for(admin_key)
    for path, method, _ in operations(api):
        if method != "get" or path.endswith("/events"):  # a valid query there streams for ever
            continue
        for query in HOSTILE_QUERIES:
            response = admin.get(fill(path, mine), query)
            assert response.status_code < 500, (path, query, response.content[:300])
            if response.status_code >= 400:
                assert response["Content-Type"] == PROBLEM, (path, query)


# --- every hostile value in every field of every body -------------------------------------------

# A body each write route accepts; each field of it is then replaced by each hostile value.
BASELINES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/workflows"): {"spec": SPEC},
    ("put", "/workflows/{workflow_id}"): {"spec": SPEC},
    ("patch", "/workflows/{workflow_id}"): {"spec": {"description": "d"}},
    ("post", "/workflows/validate"): SPEC,
    ("post", "/workflows/graph"): SPEC,
    ("post", "/workflows/import"): {
        "document": {
            "format": "agentflow.workflow-export",
            "format_version": 1,
            "versions": [{"version": 1, "spec": SPEC}],
            "sources": [],
        },
        "name": "imported",
    },
    ("post", "/workflows/execute"): {"workflow": SPEC, "initial_state": {"user_input": "hi"}},
    ("post", "/workflows/{workflow_id}/execute"): {"initial_state": {"user_input": "hi"}},
    ("post", "/sources"): {"name": "s2", "kind": "openai", "config": {"model_name": "m"}},
    ("put", "/sources/{source_id}"): {"name": "s3", "kind": "openai", "config": {}},
    ("patch", "/sources/{source_id}"): {"description": "d"},
    ("post", "/keys"): {"name": "k", "role": "viewer", "rate_limit": "5/min"},
    ("put", "/budget"): {"daily_tokens": 1, "daily_cost": "1"},
    ("post", "/workflows/{workflow_id}/schedules"): {
        "cron": "0 9 * * *",
        "timezone": "Europe/Paris",
        "initial_state": {"user_input": "hi"},
    },
    ("patch", "/workflows/{workflow_id}/schedules/{schedule_id}"): {"paused": True},
    ("post", "/executions/{execution_id}/resume"): {"answer": "approve", "comment": "c"},
    ("post", "/executions/{execution_id}/replay"): {
        "version": 1,
        "from_node": "say",
        "mode": "sync",
        "initial_state": {"user_input": "hi"},
    },
}
NESTED: Any = "x"
for _ in range(99):
    NESTED = [NESTED]
HOSTILE_VALUES: list[Any] = [
    2**63,
    -(2**63) - 1,
    int("9" * 4000),
    1e308,
    -1e308,
    "x" * 20_000,
    "\u00e9" * 300,
    "9999-12-31T23:59:59-17:00",
    "0001-01-01T00:00:00+17:00",
    "\u00b2",
    "-1/min",
    [],
    {},
    None,
    True,
    NESTED,
]


def _hostile_bodies(baseline: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`baseline` with each hostile value in each of its fields, and in its spec's."""
    for value in HOSTILE_VALUES:
        for key in baseline:
            yield {**json.loads(json.dumps(baseline)), key: value}
        for holder in ("spec", "workflow", None):
            body = json.loads(json.dumps(baseline))
            spec = body if holder is None else body.get(holder)
            if not isinstance(spec, dict) or "nodes" not in spec:
                continue
            for key in ("name", "description", "start_node", "nodes"):
                yield {**body, holder: {**spec, key: value}} if holder else {**spec, key: value}


def test_no_write_answers_a_hostile_field_with_a_500_or_half_writes_a_refusal(
    api: APIClient, admin_key: IssuedKey, mine: dict[str, str]
) -> None:
    admin = client_for(admin_key)
    routes = {(method, path.removeprefix(API)) for path, method, body in operations(api) if body}
    assert routes == set(BASELINES), "a route takes a body: give it a baseline in BASELINES"
    for (method, path), baseline in BASELINES.items():
        url = API + fill(path, mine)
        for body in _hostile_bodies(baseline):
            before = state()
            response = send(admin, method, url, json.dumps(body))
            where = (method, path, json.dumps(body)[:200])
            assert response.status_code < 500, (*where, response.content[:300])
            if response.status_code >= 400:
                assert response["Content-Type"] == PROBLEM, where
                assert state() == before, where


# --- 8: accepted before, wrong -------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["-5/min", "0/min", "5/mango", "1.5/s", "/min", "5/"])
def test_a_rate_limit_that_would_refuse_every_request_is_a_400(
    admin_key: IssuedKey, rate: str
) -> None:
    before = state()
    body = {"name": "k", "role": "viewer", "rate_limit": rate}
    response = client_for(admin_key).post(f"{API}/keys", body, format="json")
    assert_problem(response, 400, field="rate_limit")
    assert state() == before


def test_a_stored_rate_that_is_not_one_falls_back_to_the_servers(admin_key: IssuedKey) -> None:
    ApiKey.objects.filter(pk=admin_key.row.pk).update(rate_limit="-5/min")
    assert [client_for(admin_key).get(f"{API}/me").status_code for _ in range(3)] == [200] * 3


def test_every_429_carries_retry_after_even_once_a_keys_rate_was_lowered(
    admin_key: IssuedKey,
) -> None:
    ApiKey.objects.filter(pk=admin_key.row.pk).update(rate_limit="100/min")
    admin = client_for(admin_key)
    assert [admin.get(f"{API}/me").status_code for _ in range(3)] == [200] * 3
    ApiKey.objects.filter(pk=admin_key.row.pk).update(rate_limit="1/min")
    response = admin.get(f"{API}/me")
    assert_problem(response, 429)
    assert 0 < int(response["Retry-After"]) <= 60


def test_a_zero_daily_cost_is_answered_in_the_schemas_own_format(
    api: APIClient, admin_key: IssuedKey
) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    pattern = schema["components"]["schemas"]["Budget"]["properties"]["daily_cost"]["pattern"]
    admin = client_for(admin_key)
    for cost in ("0", "0.00000001", "1234567890.12345678"):
        body = {"daily_tokens": None, "daily_cost": cost}
        answer = admin.put(f"{API}/budget", body, format="json").json()
        assert re.fullmatch(pattern, answer["daily_cost"]), answer
        assert admin.get(f"{API}/budget").json() == answer
    assert answer["daily_cost"] == "1234567890.12345678"
    zero = admin.put(f"{API}/budget", {"daily_tokens": 0, "daily_cost": 0}, format="json")
    assert zero.json() == {"daily_tokens": 0, "daily_cost": "0.00000000"}


def test_the_405_and_415_titles_are_filled_in(admin_key: IssuedKey) -> None:
    admin = client_for(admin_key)
    method = assert_problem(admin.delete(f"{API}/me"), 405)
    assert method["title"] == "Method not allowed"
    assert "DELETE" in method["detail"]
    media = assert_problem(admin.post(f"{API}/keys", "x", content_type="text/plain"), 415)
    assert media["title"] == "Unsupported media type"
    assert "text/plain" in media["detail"]


def test_a_body_in_a_charset_that_is_not_text_is_a_400(admin_key: IssuedKey) -> None:
    body = '{"name": "k", "role": "viewer"}'
    for charset in ("rot13", "utf-16", "base64"):
        response = client_for(admin_key).post(
            f"{API}/keys", body, content_type=f"application/json; charset={charset}"
        )
        assert_problem(response, 400)


# --- through a real server: chunked bodies, and bodies too large to read --------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None) -> Iterator[Stack]:
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("the real-server cases need PostgreSQL (DATABASE_URL) under CI")
        pytest.skip("the real-server cases need PostgreSQL")
    logs = tmp_path_factory.mktemp("no500")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "AGENTFLOW_DATA_DIR": str(logs),
        "LOG_LEVEL": "WARNING",
    }
    stack = Stack(env, Path(logs))
    stack.web()
    yield stack
    stack.stop()


def http(
    stack: Stack, head: str, chunks: Iterable[bytes] = (), timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    """Send a request's head, then `chunks` as they are; answer (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        for chunk in chunks:
            sock.sendall(chunk)
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            assert part, f"the server closed without answering: {data!r}"
            data += part
        raw_head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        while len(body) < int(headers.get("content-length", "0")):
            part = sock.recv(65536)
            assert part, "the server closed mid-answer"
            body += part
    return int(status_line.split()[1]), headers, body


def head(method: str, path: str, key: IssuedKey | None, **headers: str) -> str:
    lines = [f"{method} {API}{path} HTTP/1.1", "Host: 127.0.0.1"]
    if key is not None:
        lines.append(f"X-API-Key: {key.secret}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def chunked(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        part = body[start : start + size]
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"


def chunked_request(
    stack: Stack, method: str, path: str, key: IssuedKey, body: Any
) -> tuple[int, dict[str, str], Any]:
    text = json.dumps(body).encode()
    start = head(method, path, key, Content_Type="application/json", Transfer_Encoding="chunked")
    status, headers, answer = http(stack, start, [*chunked(text), b"0\r\n\r\n"])
    return status, headers, json.loads(answer)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_is_read_on_every_route(
    server: Stack, tenant: Tenant, admin_key: IssuedKey
) -> None:
    status, _, created = chunked_request(server, "POST", "/workflows", admin_key, {"spec": SPEC})
    assert status == 201, created
    assert Workflow.objects.get(pk=created["id"]).spec["name"] == "mine"
    status, _, report = chunked_request(server, "POST", "/workflows/validate", admin_key, SPEC)
    assert (status, report["valid"]) == (200, True)
    budget = {"daily_tokens": 7, "daily_cost": "1.5"}
    status, _, answer = chunked_request(server, "PUT", "/budget", admin_key, budget)
    assert (status, answer) == (200, {"daily_tokens": 7, "daily_cost": "1.50000000"})
    patch = {"spec": {"description": "chunked"}}
    wf = f"/workflows/{created['id']}"
    status, _, patched = chunked_request(server, "PATCH", wf, admin_key, patch)
    assert (status, patched["description"], patched["version"]) == (200, "chunked", 2)
    # The same checks as any body's.
    bad = {"spec": {**SPEC, "description": "\x00"}}
    status, headers, problem = chunked_request(server, "POST", "/workflows", admin_key, bad)
    assert (status, headers["content-type"]) == (400, PROBLEM)
    assert problem["errors"][0]["field"] == "spec.description"


GIB = 1024**3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/sources", 413, "content_too_large"),
        ("/keys", 413, "content_too_large"),
        ("/workflows", 422, "spec_too_large"),
        ("/workflows/validate", 200, "spec_too_large"),
    ],
)
def test_a_body_declared_over_the_limit_is_answered_before_a_byte_of_it_is_sent(
    server: Stack, admin_key: IssuedKey, path: str, status: int, kind: str
) -> None:
    start = head("POST", path, admin_key, Content_Type="application/json", Content_Length=str(GIB))
    answered, headers, body = http(server, start, timeout=20)  # no body is ever sent
    assert answered == status
    assert headers["connection"] == "close"  # and the server reads none of it
    found = json.loads(body)
    problem_type = found.get("type", "").rsplit("/", 1)[-1]  # a problem, or a validation report
    assert kind in (problem_type, *(e.get("type") for e in found.get("errors", [])))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/sources", "/workflows", "/keys"])
def test_an_unauthenticated_body_over_the_limit_is_a_401_before_it_is_read(
    server: Stack, path: str
) -> None:
    start = head("POST", path, None, Content_Type="application/json", Content_Length=str(GIB))
    status, headers, _ = http(server, start, timeout=20)
    assert (status, headers["content-type"]) == (401, PROBLEM)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_the_limit_is_answered_once_the_limit_is_passed(
    server: Stack, admin_key: IssuedKey
) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    start = head(
        "POST", "/sources", admin_key, Content_Type="application/json", Transfer_Encoding="chunked"
    )
    # One byte over, and no end: a server that waited for the whole body would never answer.
    status, headers, body = http(server, start, chunked(b"x" * (limit + 1), 64 * 1024))
    assert (status, headers["connection"]) == (413, "close")
    assert json.loads(body)["type"].endswith("content_too_large")
    assert not Source.objects.exists()


def test_the_test_client_gets_the_same_answer_to_a_body_over_the_limit(
    admin_key: IssuedKey,
) -> None:
    over = '{"name": "' + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + '"}'
    response = send(client_for(admin_key), "post", f"{API}/sources", over)
    body = assert_problem(response, 413, field="")
    assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,}" in body["detail"]
