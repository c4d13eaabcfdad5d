"""The workflow's admin page downloads its export document (workflows/transfer.py), as the API
gives it, to staff who may view the tenant's workflows."""

import json

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from tenants.models import Tenant
from tests.tenants.test_staff_scope import SPEC, signed_in, staff_user
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_update
from workflows.transfer import FORMAT

pytestmark = pytest.mark.django_db


def export_url(workflow: Workflow) -> str:
    return f"/admin/workflows/workflow/{quote(workflow.pk)}/export/"


@pytest.fixture
def desk(tenant: Tenant) -> Workflow:
    first = workflow_create(tenant=tenant, spec={**SPEC, "name": "desk"}, actor="key:setup")
    return workflow_update(
        workflow=first, spec={**SPEC, "name": "desk", "description": "v2"}, actor="key:setup"
    )


def test_the_workflow_page_downloads_its_export_document(tenant: Tenant, desk: Workflow) -> None:
    client = signed_in(staff_user(tenant))
    page = client.get(f"/admin/workflows/workflow/{quote(desk.pk)}/change/").content.decode()
    assert f'<a href="{export_url(desk)}" download>Export</a>' in page

    answer = client.get(export_url(desk))

    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    assert answer["Content-Disposition"] == 'attachment; filename="desk-export.json"'
    document = json.loads(answer.content)
    assert document["format"] == FORMAT
    assert document["workflow"]["id"] == desk.pk
    assert [v["version"] for v in document["versions"]] == [1, 2]


def test_an_export_is_scoped_to_the_tenants_staff_act_for_and_needs_view_permission(
    tenant: Tenant, other_tenant: Tenant, desk: Workflow
) -> None:
    theirs = workflow_create(tenant=other_tenant, spec=SPEC, actor="key:setup")
    assert signed_in(staff_user(tenant)).get(export_url(theirs)).status_code == 404
    assert signed_in(staff_user(other_tenant)).get(export_url(theirs)).status_code == 200

    blind = staff_user(tenant)
    blind.user_permissions.remove(*Permission.objects.filter(codename="view_workflow"))
    assert signed_in(blind).get(export_url(desk)).status_code == 403
    assert Client().get(export_url(desk))["Location"].startswith("/admin/login/")

    Workflow.objects.filter(pk=desk.pk).update(deleted_at=timezone.now())
    assert signed_in(staff_user(tenant)).get(export_url(desk)).status_code == 404
