"""Staff act for their tenants: the admin shows them those tenants' rows and nothing of the
others, and their admin session may call the API as that tenant, with the membership's role."""

import json
import secrets
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from executions.models import Execution, Status
from tenants.models import ApiKey, AuditEvent, Role, StaffMembership, Tenant
from tests.conftest import client_for, issue_key
from workflows.models import Workflow
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db

SPEC = {
    "name": "scoped",
    "start_node": "in",
    "nodes": [
        {"id": "in", "type": "input"},
        {"id": "out", "type": "aggregator", "metadata": {"strategy": "template", "template": "ok"}},
    ],
    "edges": [{"from": "in", "to": "out"}],
}
PERMS = (
    "view_workflow",
    "view_workflowversion",
    "view_execution",
    "change_execution",
    "add_execution",
    "view_source",
    "view_auditevent",
    "view_apikey",
    "view_tenant",
)


def staff_user(*acts_for: Tenant, role: str = Role.EXECUTOR, **flags: bool) -> Any:
    user = get_user_model().objects.create_user(
        f"staff-{secrets.token_hex(4)}", "s@example.com", "x", is_staff=True, **flags
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=PERMS))
    for tenant in acts_for:
        StaffMembership.objects.create(user=user, tenant=tenant, role=role)
    return user


def signed_in(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def a_run(workflow: Workflow, status: str = Status.SUCCEEDED) -> Execution:
    return Execution.objects.create(
        tenant=workflow.tenant,
        workflow=workflow,
        workflow_name=workflow.name,
        workflow_version=workflow.version,
        spec=workflow.spec,
        status=status,
        initial_state={"user_input": "hi"},
        created_by="key:setup",
    )


@pytest.fixture
def two(tenant: Tenant, other_tenant: Tenant) -> dict[str, Any]:
    mine = workflow_create(tenant=tenant, spec={**SPEC, "name": "acme-flow"}, actor="key:setup")
    theirs = workflow_create(
        tenant=other_tenant, spec={**SPEC, "name": "globex-flow"}, actor="key:setup"
    )
    return {
        "mine": mine,
        "theirs": theirs,
        "my_run": a_run(mine),
        "their_run": a_run(theirs, Status.FAILED),
    }


# --- the admin --------------------------------------------------------------------------------


def test_staff_see_their_tenants_rows_and_nothing_of_the_others(
    tenant: Tenant, two: dict[str, Any]
) -> None:
    client = signed_in(staff_user(tenant))
    workflows = client.get("/admin/workflows/workflow/").content.decode()
    assert "acme-flow" in workflows and "globex-flow" not in workflows
    runs = client.get("/admin/executions/execution/").content.decode()
    assert two["my_run"].pk in runs and two["their_run"].pk not in runs
    tenants = client.get("/admin/tenants/tenant/").content.decode()
    assert "Acme Corp" in tenants and "Globex" not in tenants
    start = client.get("/").content.decode()
    assert two["my_run"].pk in start and two["their_run"].pk not in start
    assert "globex-flow" not in start  # its failed run makes it "failing", for its own staff


def test_another_tenants_pages_are_not_found(tenant: Tenant, two: dict[str, Any]) -> None:
    client = signed_in(staff_user(tenant))
    theirs, their_run = two["theirs"], two["their_run"]
    wid, rid = quote(theirs.pk), quote(their_run.pk)
    change = client.get(f"/admin/workflows/workflow/{wid}/change/")
    assert change.status_code == 302 and change["Location"] == "/admin/"  # "doesn't exist"
    assert client.get(f"/admin/workflows/workflow/{wid}/versions/1/").status_code == 404
    assert client.get(f"/admin/workflows/workflow/{wid}/run/").status_code == 404
    assert client.get(f"/admin/executions/execution/{rid}/run/").status_code == 404
    run_page = client.get(f"/admin/executions/execution/{rid}/change/")
    assert run_page.status_code == 302
    assert client.post(f"/admin/executions/execution/{rid}/cancel/").status_code == 404
    # and their own pages answer
    assert (
        client.get(f"/admin/workflows/workflow/{quote(two['mine'].pk)}/change/").status_code == 200
    )
    mine = client.get(f"/admin/executions/execution/{quote(two['my_run'].pk)}/run/")
    assert mine.status_code == 200 and mine.json()["status"] == Status.SUCCEEDED


def test_a_running_run_of_another_tenant_cannot_be_cancelled(
    tenant: Tenant, two: dict[str, Any]
) -> None:
    running = a_run(two["theirs"], Status.QUEUED)
    client = signed_in(staff_user(tenant))
    assert (
        client.post(f"/admin/executions/execution/{quote(running.pk)}/cancel/").status_code == 404
    )
    running.refresh_from_db()
    assert running.status == Status.QUEUED and not running.cancel_requested


def test_staff_who_act_for_no_tenant_see_no_data_and_are_told_why(two: dict[str, Any]) -> None:
    client = signed_in(staff_user())
    assert "acme-flow" not in client.get("/admin/workflows/workflow/").content.decode()
    start = client.get("/").content.decode()
    assert 'id="no-tenant"' in start and "You act for no tenant yet" in start
    assert two["my_run"].pk not in start


def test_a_superuser_sees_every_tenant(two: dict[str, Any], admin_client: Client) -> None:
    workflows = admin_client.get("/admin/workflows/workflow/").content.decode()
    assert "acme-flow" in workflows and "globex-flow" in workflows
    start = admin_client.get("/").content.decode()
    assert two["my_run"].pk in start and two["their_run"].pk in start


def test_the_new_workflow_form_offers_only_the_users_tenants(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    user = staff_user(tenant)
    user.user_permissions.add(Permission.objects.get(codename="add_workflow"))
    client = signed_in(user)
    form = client.get("/admin/workflows/workflow/add/").content.decode()
    assert "Acme Corp" in form or "acme" in form
    assert "globex" not in form.lower()
    refused = client.post(
        "/admin/workflows/workflow/add/",
        {"tenant": other_tenant.pk, "spec": json.dumps(SPEC)},
    )
    assert refused.status_code == 200  # the form again, with the tenant refused
    assert "Select a valid choice" in refused.content.decode()
    assert not Workflow.objects.filter(tenant=other_tenant).exists()


# --- the API with the admin's session ----------------------------------------------------------


def test_a_staff_session_calls_the_api_as_the_tenant_it_acts_for(
    tenant: Tenant, two: dict[str, Any]
) -> None:
    user = staff_user(tenant, role=Role.EXECUTOR)
    client = signed_in(user)
    me = client.get("/api/v1/me")
    assert me.status_code == 200, me.content
    assert me.json() | {} == {
        "tenant": "acme",
        "tenant_name": "Acme Corp",
        "role": "executor",
        "key_prefix": None,
        "key_name": None,
        "expires_at": None,
        "user": user.get_username(),
    }
    listed = client.get("/api/v1/workflows").json()
    names = [w["name"] for w in listed["results"]]
    assert names == ["acme-flow"]
    other = client.get(f"/api/v1/workflows/{two['theirs'].pk}")
    assert other.status_code == 404


def test_a_session_write_needs_the_csrf_token_and_the_role(tenant: Tenant) -> None:
    user = staff_user(tenant, role=Role.EXECUTOR)
    client = signed_in(user, enforce_csrf_checks=True)
    body = {"workflow": SPEC, "initial_state": {"user_input": "hi"}}
    no_token = client.post("/api/v1/workflows/execute", body, content_type="application/json")
    assert no_token.status_code == 403
    assert "CSRF" in no_token.json()["detail"]
    assert not Execution.objects.exists()

    client.get("/admin/")  # the admin's pages set the csrftoken cookie, as in a browser
    token = client.cookies["csrftoken"].value
    ran = client.post(
        "/api/v1/workflows/execute", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert ran.status_code == 200, ran.content
    execution = Execution.objects.get()
    assert execution.tenant == tenant
    assert execution.created_by == f"user:{user.get_username()}"

    create = client.post(
        "/api/v1/workflows",
        {"spec": SPEC},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert create.status_code == 403
    assert "needs the 'developer' role; your membership has 'executor'" in create.json()["detail"]


def test_a_session_write_is_audited_as_the_user(tenant: Tenant) -> None:
    user = staff_user(tenant, role=Role.DEVELOPER)
    client = signed_in(user)
    created = client.post("/api/v1/workflows", {"spec": SPEC}, content_type="application/json")
    assert created.status_code == 201, created.content
    event = AuditEvent.objects.get(action="workflow.create")
    assert event.actor == f"user:{user.get_username()}" and event.tenant == tenant


def test_several_tenants_are_told_apart_by_a_header(tenant: Tenant, other_tenant: Tenant) -> None:
    client = signed_in(staff_user(tenant, other_tenant))
    unsure = client.get("/api/v1/me")
    assert unsure.status_code == 401
    assert "X-AgentFlow-Tenant" in unsure.json()["detail"]
    chosen = client.get("/api/v1/me", HTTP_X_AGENTFLOW_TENANT="globex")
    assert chosen.status_code == 200 and chosen.json()["tenant"] == "globex"
    not_mine = client.get("/api/v1/me", HTTP_X_AGENTFLOW_TENANT="initech")
    assert not_mine.status_code == 401
    assert "do not act for a tenant 'initech'" in not_mine.json()["detail"]


def test_sessions_that_act_for_no_tenant_are_refused(tenant: Tenant, admin_client: Client) -> None:
    refused = admin_client.get("/api/v1/me")  # a superuser, but for which tenant?
    assert refused.status_code == 401
    assert "acts for no active tenant" in refused.json()["detail"]
    tenant.is_active = False
    tenant.save()
    disabled = signed_in(staff_user(tenant)).get("/api/v1/me")
    assert disabled.status_code == 401
    not_staff = get_user_model().objects.create_user(f"u-{secrets.token_hex(4)}", "u@x.io", "x")
    StaffMembership.objects.create(user=not_staff, tenant=tenant)
    plain = signed_in(not_staff).get("/api/v1/me")
    assert plain.status_code == 401
    assert "X-API-Key" in plain.json()["detail"]


def test_a_key_sent_with_a_session_wins(tenant: Tenant, other_tenant: Tenant) -> None:
    client = signed_in(staff_user(tenant))
    key = issue_key(other_tenant, Role.VIEWER)
    me = client.get("/api/v1/me", HTTP_X_API_KEY=key.secret)
    assert me.status_code == 200
    assert me.json()["tenant"] == "globex" and me.json()["key_prefix"] == key.prefix
    assert me.json()["user"] is None
    assert client_for(key).get("/api/v1/me").json()["tenant"] == "globex"


# --- what the admin does is audited, and nothing is hard-deleted ---------------------------------


def test_keys_made_and_revoked_in_the_admin_are_audited_and_never_deleted(
    tenant: Tenant, admin_client: Client
) -> None:
    made = admin_client.post(
        "/admin/tenants/apikey/add/",
        {"name": "from the admin", "tenant": tenant.pk, "role": "viewer", "rate_limit": ""},
    )
    assert made.status_code == 302, made.content.decode()[:2000]
    key = ApiKey.objects.get(name="from the admin")
    created = AuditEvent.objects.get(action="key.create", target_id=key.prefix)
    assert created.actor.startswith("user:admin-") and created.details["via"] == "admin"
    assert created.ip == "127.0.0.1"  # the client's address, as the API's audit has it

    page = f"/admin/tenants/apikey/{quote(key.pk)}/change/"
    revoked = admin_client.post(
        page, {"name": "from the admin", "tenant": tenant.pk, "role": "viewer", "revoked": "on"}
    )
    assert revoked.status_code == 302
    assert AuditEvent.objects.filter(action="key.revoke", target_id=key.prefix).count() == 1

    assert admin_client.get(f"/admin/tenants/apikey/{quote(key.pk)}/delete/").status_code == 403
    run = a_run(workflow_create(tenant=tenant, spec=SPEC, actor="key:setup"))
    assert (
        admin_client.get(f"/admin/executions/execution/{quote(run.pk)}/delete/").status_code == 403
    )
    assert (
        ApiKey.objects.filter(pk=key.pk).exists() and Execution.objects.filter(pk=run.pk).exists()
    )


def test_tenant_settings_and_memberships_changed_in_the_admin_are_audited(
    tenant: Tenant, admin_client: Client
) -> None:
    user = staff_user()
    page = f"/admin/tenants/tenant/{tenant.pk}/change/"
    form = {
        "slug": "acme",
        "name": "Acme Corp",
        "is_active": "on",
        "allowed_env": "[]",
        "trusted_hosts": '["db.internal:5432"]',
        "daily_token_budget": "",
        "daily_cost_budget": "",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        "staff-TOTAL_FORMS": "1",
        "staff-INITIAL_FORMS": "0",
        "staff-0-user": user.pk,
        "staff-0-role": "developer",
    }
    saved = admin_client.post(page, form)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    update = AuditEvent.objects.get(action="tenant.update", tenant=tenant)
    assert update.details["changed"]["trusted_hosts"] == "['db.internal:5432']"
    added = AuditEvent.objects.get(action="staff.add", tenant=tenant)
    assert added.target_id == user.get_username() and added.details["role"] == "developer"
    assert StaffMembership.objects.get(user=user).role == "developer"
