import json

import pytest
from django.contrib.admin.utils import quote

from workflows.models import Workflow
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db
SPEC = {
    "name": "hello",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {"id": "say", "type": "aggregator", "metadata": {"strategy": "template", "template": "hi"}},
    ],
    "edges": [{"from": "input", "to": "say"}],
}


def test_the_admin_shows_the_spec_as_formatted_json_and_the_versions(admin_client, tenant) -> None:
    workflow = workflow_create(tenant=tenant, spec=SPEC, actor="key:abc")
    response = admin_client.get(f"/admin/workflows/workflow/{quote(workflow.id)}/change/")
    assert response.status_code == 200, response.headers.get("Location")
    page = response.content.decode()
    assert "&quot;start_node&quot;: &quot;input&quot;,\n" in page  # indented, one key a line
    assert "key:abc" in page  # the version's author


def test_saving_in_the_admin_validates_and_keeps_a_version(admin_client, tenant) -> None:
    workflow = workflow_create(tenant=tenant, spec=SPEC, actor="key:abc")
    url = f"/admin/workflows/workflow/{quote(workflow.id)}/change/"
    broken = {**SPEC, "start_node": "nope"}
    page = admin_client.post(
        url,
        {"spec": json.dumps(broken), "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"},
    )
    assert page.status_code == 200
    assert "missing_node" in page.content.decode()
    assert Workflow.objects.get(pk=workflow.pk).version == 1
    fixed = {**SPEC, "description": "now documented"}
    admin_client.post(
        url, {"spec": json.dumps(fixed), "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"}
    )
    saved = Workflow.objects.get(pk=workflow.pk)
    assert saved.version == 2
    assert saved.description == "now documented"
    assert saved.versions.get(version=2).created_by.startswith("user:admin-")
