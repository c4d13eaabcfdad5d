"""The audit log as an admin sees it: who created, changed, deleted or executed what, and
which attempts to use one of the tenant's keys failed."""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import AuditEvent, Tenant
from tests.conftest import SETUP_ACTOR, IssuedKey, client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/audit"
WORKFLOWS = "/api/v1/workflows"
SOURCES = "/api/v1/sources"
KEYS = "/api/v1/keys"

SPEC: dict[str, Any] = {
    "name": "greeter",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "answer",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "{{ user_input }}!"},
        },
    ],
    "edges": [{"from": "input", "to": "answer"}],
}
SOURCE = {"name": "demo", "kind": "sqlite", "config": {"path": "demo.sqlite3"}}


def events(admin: IssuedKey, **filters: Any) -> list[dict[str, Any]]:
    response = client_for(admin).get(URL, filters)
    assert response.status_code == 200, response.json()
    return [row for row in response.json()["results"] if row["actor"] != SETUP_ACTOR]


def only(rows: list[dict[str, Any]], action: str) -> dict[str, Any]:
    found = [row for row in rows if row["action"] == action]
    assert len(found) == 1, rows
    return found[0]


def test_every_write_leaves_an_event_naming_the_key_the_action_and_the_target(
    admin_key: IssuedKey, developer_key: IssuedKey
) -> None:
    dev = client_for(developer_key)
    workflow = dev.post(WORKFLOWS, {"spec": SPEC}, format="json").json()["id"]
    edited = {**SPEC, "description": "edited"}
    assert dev.put(f"{WORKFLOWS}/{workflow}", {"spec": edited}, format="json").status_code == 200
    body = {"initial_state": {"user_input": "hi"}}
    execution = dev.post(f"{WORKFLOWS}/{workflow}/execute", body, format="json").json()[
        "execution_id"
    ]
    assert dev.delete(f"{WORKFLOWS}/{workflow}").status_code == 204
    source = dev.post(SOURCES, SOURCE, format="json").json()["id"]
    patch = {"description": "the demo catalogue"}
    assert dev.patch(f"{SOURCES}/{source}", patch, format="json").status_code == 200
    assert dev.delete(f"{SOURCES}/{source}").status_code == 204

    rows = events(admin_key)
    dev_actor = f"key:{developer_key.prefix}"
    expected = {
        "workflow.create": workflow,
        "workflow.update": workflow,
        "execution.create": execution,
        "workflow.delete": workflow,
        "source.create": source,
        "source.update": source,
        "source.delete": source,
    }
    for action, target in expected.items():
        row = only(rows, action)
        assert row["actor"] == dev_actor, row
        assert row["target_id"] == target, row
        assert row["at"]
    assert [r["action"] for r in rows] == [
        "source.delete",
        "source.update",
        "source.create",
        "workflow.delete",
        "execution.create",
        "workflow.update",
        "workflow.create",
    ]
    assert only(rows, "execution.create")["details"]["workflow"] == workflow
    assert only(rows, "workflow.update")["target_type"] == "workflow"


def test_creating_and_revoking_a_key_are_audited(admin_key: IssuedKey) -> None:
    admin = client_for(admin_key)
    created = admin.post(KEYS, {"name": "ci", "role": "executor"}, format="json")
    assert created.status_code == 201
    prefix = created.json()["prefix"]
    assert admin.post(f"{KEYS}/{prefix}/revoke").status_code == 200
    rows = events(admin_key)
    for action in ("key.create", "key.revoke"):
        row = only(rows, action)
        assert (row["actor"], row["target_id"]) == (f"key:{admin_key.prefix}", prefix)
    assert created.json()["key"] not in str(rows)  # the secret is never recorded


def test_a_wrong_secret_for_a_real_key_is_audited_for_its_tenant(
    admin_key: IssuedKey, viewer_key: IssuedKey
) -> None:
    wrong = f"{viewer_key.prefix}.not-the-secret-at-all-0123456789"
    response = APIClient().get(WORKFLOWS, HTTP_X_API_KEY=wrong)
    assert response.status_code == 401
    row = only(events(admin_key), "auth.failed")
    assert row["actor"] == f"key:{viewer_key.prefix}"
    assert row["target_id"] == viewer_key.prefix
    assert row["ip"] == "127.0.0.1"
    assert "not-the-secret" not in str(row)


def test_a_flood_of_wrong_secrets_leaves_one_event_a_minute(
    admin_key: IssuedKey, viewer_key: IssuedKey
) -> None:
    wrong = f"{viewer_key.prefix}.not-the-secret-at-all-0123456789"
    for _ in range(20):
        assert APIClient().get(WORKFLOWS, HTTP_X_API_KEY=wrong).status_code == 401
    failed = [e for e in events(admin_key) if e["action"] == "auth.failed"]
    assert len(failed) == 1


def test_a_revoked_key_in_use_is_audited(admin_key: IssuedKey, viewer_key: IssuedKey) -> None:
    assert client_for(admin_key).post(f"{KEYS}/{viewer_key.prefix}/revoke").status_code == 200
    assert client_for(viewer_key).get(WORKFLOWS).status_code == 401
    row = only(events(admin_key), "auth.failed")
    assert row["target_id"] == viewer_key.prefix
    assert "revoked" in row["details"]["reason"]


def test_a_garbage_key_leaves_no_event(admin_key: IssuedKey) -> None:
    for garbage in ("nonsense", "nope.nope", f"{'x' * 8}.{'y' * 32}"):
        assert APIClient().get(WORKFLOWS, HTTP_X_API_KEY=garbage).status_code == 401
    assert not AuditEvent.objects.filter(action="auth.failed").exists()
    assert events(admin_key, action="auth.failed") == []


def test_the_log_filters_by_actor_action_family_and_time(
    admin_key: IssuedKey, developer_key: IssuedKey
) -> None:
    dev, admin = client_for(developer_key), client_for(admin_key)
    a_day_ago = timezone.now() - timedelta(days=1)
    with time_machine.travel(a_day_ago, tick=False):  # audit rows cannot be back-dated later
        theirs = admin.post(WORKFLOWS, {"spec": {**SPEC, "name": "b"}}, format="json").json()["id"]
    mine = dev.post(WORKFLOWS, {"spec": SPEC}, format="json").json()["id"]
    dev.delete(f"{WORKFLOWS}/{mine}")
    source = dev.post(SOURCES, SOURCE, format="json").json()["id"]

    dev_actor = f"key:{developer_key.prefix}"
    by_dev = events(admin_key, actor=dev_actor)
    assert [r["action"] for r in by_dev] == ["source.create", "workflow.delete", "workflow.create"]
    assert {r["target_id"] for r in events(admin_key, action="workflow.create")} == {mine, theirs}
    family = events(admin_key, action="workflow.")
    assert [r["action"] for r in family] == [
        "workflow.delete",
        "workflow.create",
        "workflow.create",
    ]
    assert family[-1]["target_id"] == theirs  # the oldest
    assert events(admin_key, action="workflow") == []  # no dot: an exact action, none such
    assert [r["target_id"] for r in events(admin_key, action="source.")] == [source]
    assert len(events(admin_key, actor=dev_actor, action="workflow.")) == 2

    cut = (a_day_ago + timedelta(hours=1)).isoformat()
    assert [r["target_id"] for r in events(admin_key, before=cut)] == [theirs]
    assert theirs not in {r["target_id"] for r in events(admin_key, after=cut)}
    assert len(events(admin_key, after=cut)) == 3


def test_the_log_pages_newest_first_by_cursor(admin_key: IssuedKey) -> None:
    admin = client_for(admin_key)
    for name in ("a", "b", "c"):
        admin.post(WORKFLOWS, {"spec": {**SPEC, "name": name}}, format="json")
    first = admin.get(URL, {"page_size": "2", "action": "workflow.create"}).json()
    assert set(first) == {"next", "previous", "results"}
    assert [r["details"]["name"] for r in first["results"]] == ["c", "b"]
    second = admin.get(first["next"]).json()
    assert [r["details"]["name"] for r in second["results"]] == ["a"]
    assert second["next"] is None


def test_another_tenants_events_never_show(
    admin_key: IssuedKey, other_admin_key: IssuedKey, other_tenant: Tenant
) -> None:
    client_for(other_admin_key).post(WORKFLOWS, {"spec": SPEC}, format="json")
    wrong = f"{other_admin_key.prefix}.wrong-secret-0123456789"
    APIClient().get(WORKFLOWS, HTTP_X_API_KEY=wrong)
    assert events(admin_key) == []
    assert {r["action"] for r in events(other_admin_key)} == {"workflow.create", "auth.failed"}
    assert events(admin_key, actor=f"key:{other_admin_key.prefix}") == []


@pytest.mark.parametrize("fixture", ["viewer_key", "executor_key", "developer_key"])
def test_only_an_admin_key_reads_the_log(request, fixture: str) -> None:
    key: IssuedKey = request.getfixturevalue(fixture)
    response = client_for(key).get(URL)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_an_audit_event_cannot_be_changed_or_deleted(admin_key: IssuedKey) -> None:
    client_for(admin_key).post(WORKFLOWS, {"spec": SPEC}, format="json")
    event = AuditEvent.objects.get(action="workflow.create")
    event.action = "workflow.nothing"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    event.refresh_from_db()
    assert event.action == "workflow.create"
    assert AuditEvent.objects.filter(action="workflow.create").count() == 1


def test_the_log_cannot_be_written_through_the_api(admin_key: IssuedKey) -> None:
    admin = client_for(admin_key)
    response = admin.post(URL, {"action": "workflow.create"}, format="json")
    assert response.status_code == 405
    assert not AuditEvent.objects.exclude(actor=SETUP_ACTOR).exists()


@pytest.mark.django_db
def test_the_database_refuses_bulk_changes_to_audit_events(admin_key: IssuedKey) -> None:
    from django.db import DatabaseError, connection, transaction

    from tenants.models import AuditEvent

    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    client_for(admin_key).post(KEYS, {"name": "x", "role": "viewer"}, format="json")
    assert AuditEvent.objects.count() > 0
    for change in (
        lambda: AuditEvent.objects.all().delete(),
        lambda: AuditEvent.objects.update(action="nothing"),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            change()
    assert not AuditEvent.objects.filter(action="nothing").exists()


def test_a_key_made_on_the_command_line_is_audited(admin_key: IssuedKey, tenant) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("createapikey", "--tenant", tenant.slug, "--role", "viewer", stdout=out)
    prefix = out.getvalue().strip().partition(".")[0]
    call_command("revokeapikey", prefix, stdout=StringIO())
    made = [(r["action"], r["actor"]) for r in events(admin_key) if r["target_id"] == prefix]
    assert made == [("key.revoke", "cli"), ("key.create", "cli")]
