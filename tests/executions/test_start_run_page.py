"""Staff start a run of a stored workflow from its admin page (executions/admin_run.py)."""

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from executions.models import Execution, Status
from executions.state_fields import state_fields
from tenants.management.commands.demo_catalogue import write_catalogue
from tenants.models import StaffMembership, Tenant
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_update

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VIEW = ("view_workflow", "view_workflowversion", "view_execution")


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


@pytest.fixture
def demo(tenant: Tenant, settings: Any, tmp_path: Path) -> Workflow:
    settings.AGENTFLOW_SQLITE_ROOT = tmp_path
    write_catalogue(tmp_path / f"t{tenant.pk}" / "demo.sqlite3")
    return workflow_create(tenant=tenant, spec=example("offline-demo"), actor="key:setup")


def staff(*codenames: str) -> tuple[Client, str]:
    name = f"staff-{secrets.token_hex(4)}"
    user = get_user_model().objects.create_user(name, "s@example.com", "x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    for tenant in Tenant.objects.all():  # staff see only the tenants they act for
        StaffMembership.objects.create(user=user, tenant=tenant)
    client = Client()
    client.force_login(user)
    return client, name


def run_url(workflow: Workflow) -> str:
    return f"/admin/workflows/workflow/{quote(workflow.pk)}/run/"


def start(client: Client, workflow: Workflow, state: str = "{}", **fields: Any) -> Any:
    data = {"version": workflow.version, "mode": "sync", "initial_state": state} | fields
    return client.post(run_url(workflow), data)


def test_a_view_only_staff_user_cannot_start_a_run(demo: Workflow) -> None:
    client, _ = staff(*VIEW)
    change = client.get(f"/admin/workflows/workflow/{quote(demo.pk)}/change/")
    assert change.status_code == 200 and "Start a run" not in change.content.decode()
    assert client.get(run_url(demo)).status_code == 403
    assert start(client, demo, state__user_input="prices?").status_code == 403
    assert not Execution.objects.exists()


def test_the_form_offers_every_version_and_the_input_nodes_keys(demo: Workflow) -> None:
    workflow_update(workflow=demo, spec=example("offline-demo") | {"name": "demo-2"}, actor="a")
    client, _ = staff(*VIEW, "add_execution")
    change = client.get(f"/admin/workflows/workflow/{quote(demo.pk)}/change/").content.decode()
    assert f'href="{run_url(demo)}">Start a run</a>' in change
    html = client.get(run_url(demo)).content.decode()
    assert '<option value="2" selected>v2 (current)</option>' in html
    assert '<option value="1">v1</option>' in html
    assert '<label for="id_state__user_input" class="required">user_input:</label>' in html
    assert 'id="id_initial_state">\n{}</textarea>' in html  # the JSON box, for any other key
    assert "belongs to Acme Corp" in html


def test_a_sync_run_lands_on_its_page_as_the_workflows_tenant(demo: Workflow) -> None:
    client, name = staff(*VIEW, "add_execution")
    response = start(client, demo, state__user_input="any prices?")
    execution = Execution.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/executions/execution/{quote(execution.pk)}/change/"
    assert execution.status == Status.SUCCEEDED, execution.error
    assert (execution.tenant, execution.workflow, execution.workflow_version) == (
        demo.tenant,
        demo,
        1,
    )
    assert execution.created_by == f"staff:{name}" and execution.mode == "sync"
    assert "Espresso machine: 249.0" in json.dumps(execution.final_state)  # it read the catalogue


def test_a_background_run_is_queued_for_the_workers(demo: Workflow) -> None:
    client, _ = staff(*VIEW, "add_execution")
    response = start(client, demo, state__user_input="hello", mode="background")
    execution = Execution.objects.get()
    assert response.status_code == 302
    assert (execution.status, execution.mode) == (Status.QUEUED, "async")


def test_an_older_version_runs_its_own_spec(demo: Workflow) -> None:
    changed = example("offline-demo")
    changed["nodes"][3]["metadata"]["template"] = "v2 says: {{ user_input }}"
    workflow_update(workflow=demo, spec=changed, actor="key:setup")
    client, _ = staff(*VIEW, "add_execution")
    start(client, demo, state__user_input="hello", version=1)
    execution = Execution.objects.get()
    assert execution.workflow_version == 1
    assert "v2 says" not in json.dumps(execution.final_state)
    assert "You said: hello" in json.dumps(execution.final_state)


@pytest.mark.parametrize("state", ["[1, 2]", "{not json", '"text"'])
def test_a_state_that_is_not_an_object_is_refused_on_the_form(demo: Workflow, state: str) -> None:
    client, _ = staff(*VIEW, "add_execution")
    response = start(client, demo, state, state__user_input="hello")
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert not Execution.objects.exists()


def test_a_required_key_left_empty_is_refused_on_the_form(demo: Workflow) -> None:
    client, _ = staff(*VIEW, "add_execution")
    response = start(client, demo, state__user_input="")
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Execution.objects.exists()


def test_the_fields_follow_the_input_nodes_schema_and_win_over_the_json(tenant: Tenant) -> None:
    triage = workflow_create(tenant=tenant, spec=example("rules-triage"), actor="key:setup")
    client, _ = staff(*VIEW, "add_execution")
    html = client.get(run_url(triage)).content.decode()
    assert '<textarea name="state__user_input"' in html  # maxLength 10000: a text area
    assert '<textarea name="state__metadata"' in html  # an object: JSON
    state = '{"user_input": "overridden", "note": "kept"}'
    meta = '{"tier": "enterprise"}'
    text = "I want a refund for my enterprise order"
    response = start(client, triage, state, state__user_input=text, state__metadata=meta)
    assert response.status_code == 302
    execution = Execution.objects.get()
    assert execution.initial_state == {
        "user_input": text,
        "metadata": {"tier": "enterprise"},
        "note": "kept",
    }
    assert execution.status == Status.SUCCEEDED, execution.error
    assert "PRIORITY: I want a refund" in json.dumps(execution.final_state)


def test_each_schema_type_gets_its_own_kind_of_field() -> None:
    schema = {
        "type": "object",
        "required": ["count"],
        "properties": {
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "urgent": {"type": "boolean"},
            "tier": {"type": "string", "enum": ["free", "enterprise"]},
            "code": {"type": "string", "maxLength": 8, "description": "the order code"},
            "tags": {"type": "array"},
        },
    }
    spec = {
        "start_node": "in",
        "nodes": [{"id": "in", "type": "input", "metadata": {"required": [], "schema": schema}}],
    }
    fields = state_fields(spec)
    kinds = {name: type(field).__name__ for name, field in fields.items()}
    assert kinds == {
        "state__count": "IntegerField",
        "state__ratio": "FloatField",
        "state__urgent": "NullBooleanField",
        "state__tier": "ChoiceField",
        "state__code": "CharField",
        "state__tags": "JSONField",
    }
    assert [f.required for f in fields.values()] == [True, False, False, False, False, False]
    assert fields["state__code"].help_text == "the order code"
    assert state_fields({"start_node": "x", "nodes": [{"id": "x", "type": "router"}]}) == {}
