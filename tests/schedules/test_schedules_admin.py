"""Schedules in the admin: staff see their tenants' schedules only, and pausing or resuming
one there goes through the service (audited; a resume counts the next tick from now)."""

from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.test import Client

from schedules.models import Schedule
from tenants.models import AuditEvent, Tenant
from tests.conftest import IssuedKey, client_for
from tests.tenants.test_staff_scope import signed_in, staff_user
from tests.workflows.test_workflows_api import create

pytestmark = pytest.mark.django_db

LIST = "/admin/schedules/schedule/"


def schedule(key: IssuedKey) -> dict[str, Any]:
    workflow = create(key)["id"]
    body = {"cron": "*/5 * * * *", "initial_state": {"user_input": "tick"}}
    response = client_for(key).post(f"/api/v1/workflows/{workflow}/schedules", body, format="json")
    assert response.status_code == 201, response.json()
    return dict(response.json())


def schedules_staff(tenant: Tenant) -> Client:
    user = staff_user(tenant)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=("view_schedule", "change_schedule"))
    )
    return signed_in(user)


def test_staff_see_their_tenants_schedules_and_not_another_tenants(
    tenant: Tenant, developer_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    mine = schedule(developer_key)
    theirs = schedule(other_admin_key)
    client = schedules_staff(tenant)

    page = client.get(LIST)
    assert page.status_code == 200
    assert mine["id"] in page.text and theirs["id"] not in page.text
    assert client.get(f"{LIST}{quote(mine['id'])}/change/").status_code == 200
    # another tenant's schedule does not exist for them
    assert client.get(f"{LIST}{quote(theirs['id'])}/change/").status_code in (302, 404)
    assert not Schedule.objects.get(pk=theirs["id"]).paused


def test_pause_and_resume_from_the_admin_are_audited_and_resume_counts_from_now(
    tenant: Tenant, developer_key: IssuedKey
) -> None:
    made = schedule(developer_key)
    client = schedules_staff(tenant)

    paused = client.post(LIST, {"action": "pause", "_selected_action": [made["id"]]}, follow=True)
    assert paused.status_code == 200
    assert "Paused 1 schedule(s)." in paused.text
    row = Schedule.objects.get(pk=made["id"])
    assert row.paused and row.next_run_at is None

    resumed = client.post(LIST, {"action": "resume", "_selected_action": [made["id"]]}, follow=True)
    assert "Resumed 1 schedule(s)." in resumed.text
    row.refresh_from_db()
    assert not row.paused and row.next_run_at is not None

    actions = list(
        AuditEvent.objects.filter(target_id=made["id"], action="schedule.update")
        .order_by("at")
        .values_list("actor", "details")
    )
    assert [details["paused"] for _, details in actions] == [True, False]
    assert all(actor.startswith("user:staff-") for actor, _ in actions)


def test_the_schedule_page_is_read_only(tenant: Tenant, developer_key: IssuedKey) -> None:
    made = schedule(developer_key)
    client = schedules_staff(tenant)
    page = client.get(f"{LIST}{quote(made['id'])}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.text
    assert made["id"] in page.text and "*/5 * * * *" in page.text
    posted = client.post(f"{LIST}{quote(made['id'])}/change/", {"cron": "* * * * *"})
    assert posted.status_code == 403
    assert Schedule.objects.get(pk=made["id"]).cron == "*/5 * * * *"
