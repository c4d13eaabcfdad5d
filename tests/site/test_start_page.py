"""`/`: staff see recent runs and failing workflows; anyone else sees the way in, no data."""

import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from executions.models import Execution, Status
from tenants.models import StaffMembership, Tenant
from workflows.models import Workflow
from workflows.services import workflow_create

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


@pytest.fixture
def demo(tenant: Tenant) -> Workflow:
    return workflow_create(tenant=tenant, spec=example("offline-demo"), actor="key:setup")


def run(workflow: Workflow, status: str, *, days_ago: float = 0, **fields: Any) -> Execution:
    execution = Execution.objects.create(
        **fields,
        tenant=workflow.tenant,
        workflow=workflow,
        workflow_version=workflow.version,
        spec=workflow.spec,
        workflow_name=workflow.name,
        status=status,
        created_by="key:abc123",
    )
    if days_ago:  # created_at is auto_now_add: set it afterwards
        earlier = timezone.now() - timedelta(days=days_ago)
        Execution.objects.filter(pk=execution.pk).update(created_at=earlier)
    return execution


def staff_client(*perms: str, is_staff: bool = True) -> Client:
    user = get_user_model().objects.create_user(
        f"staff-{secrets.token_hex(4)}", "s@example.com", secrets.token_urlsafe(16)
    )
    user.is_staff = is_staff
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    for tenant in Tenant.objects.all():  # staff see only the tenants they act for
        StaffMembership.objects.create(user=user, tenant=tenant)
    client = Client()
    client.force_login(user)
    return client


def text_of(client: Client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def test_staff_see_recent_runs_linking_to_each_run(admin_client: Client, demo: Workflow) -> None:
    done, broke = run(demo, Status.SUCCEEDED), run(demo, Status.FAILED, id="exec_25ab")
    html = text_of(admin_client)
    # the admin's own quoting: "_25" must not read as "%" when the link is followed
    assert (
        admin_client.get(f"/admin/executions/execution/{quote(broke.pk)}/change/").status_code
        == 200
    )
    assert "Recent runs" in html
    for execution in (done, broke):
        assert f'href="/admin/executions/execution/{quote(execution.pk)}/change/"' in html
    assert ">Succeeded<" in html and ">Failed<" in html
    assert "key:abc123" in html and ">acme<" in html
    assert html.index(broke.pk) < html.index(done.pk)  # newest first


def test_staff_see_the_workflows_that_failed_lately(
    admin_client: Client, demo: Workflow, tenant: Tenant
) -> None:
    run(demo, Status.SUCCEEDED)
    run(demo, Status.FAILED)
    run(demo, Status.TIMED_OUT)
    spec = example("offline-demo") | {"name": "fine-lately"}
    fine = workflow_create(tenant=tenant, spec=spec, actor="key:setup")
    run(fine, Status.SUCCEEDED)
    run(fine, Status.FAILED, days_ago=30)  # long ago: not failing now
    html = text_of(admin_client)
    failing = html[html.index("Failing workflows") :]
    assert f'href="/admin/workflows/workflow/{quote(demo.pk)}/change/">offline-demo</a>' in failing
    assert "2 of 3" in failing
    assert "fine-lately" not in failing


def test_staff_with_nothing_failing_are_told_so(admin_client: Client, demo: Workflow) -> None:
    run(demo, Status.SUCCEEDED)
    assert "No workflow failed lately." in text_of(admin_client)


def test_anyone_else_gets_login_and_docs_and_no_data(client: Client, demo: Workflow) -> None:
    execution = run(demo, Status.FAILED)
    html = text_of(client)
    assert 'href="/admin/login/?next=/"' in html
    assert 'href="/api/redoc/"' in html and 'href="/api/docs/"' in html
    for secret in (execution.pk, "offline-demo", "key:abc123", "Recent runs", "Failing"):
        assert secret not in html


@pytest.mark.parametrize(
    ("perms", "is_staff"),
    [((), True), (("view_execution",), False)],
    ids=["staff-without-view-execution", "not-staff"],
)
def test_logged_in_users_who_may_not_see_runs_get_no_data(
    db: None, demo: Workflow, perms: tuple[str, ...], is_staff: bool
) -> None:
    execution = run(demo, Status.FAILED)
    html = text_of(staff_client(*perms, is_staff=is_staff))
    assert execution.pk not in html and "Recent runs" not in html
    assert 'href="/admin/"' in html  # logged in: the admin, not the login form


def test_staff_who_may_view_runs_see_them(db: None, demo: Workflow) -> None:
    execution = run(demo, Status.RUNNING)
    html = text_of(staff_client("view_execution"))
    assert execution.pk in html and ">Running<" in html


def test_it_answers_only_reads(admin_client: Client) -> None:
    assert admin_client.post("/").status_code == 405
