"""What the fuzzer (test_fuzz.py) found, kept as plain regression tests."""

import pytest

from executions.models import Execution, Status
from tenants.models import Tenant
from tests.conftest import IssuedKey, client_for
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db

SPEC = {
    "name": "found",
    "start_node": "input",
    "nodes": [{"id": "input", "type": "input"}],
}


def test_a_source_url_that_is_not_text_is_a_422_not_a_500(admin_key: IssuedKey) -> None:
    spec = {
        **SPEC,
        "sources": [
            {"id": "s", "kind": "openai", "config": {"api_key_env": "X", "base_url": {"a": 1}}}
        ],
    }
    response = client_for(admin_key).post(
        "/api/v1/workflows/execute", {"workflow": spec}, format="json"
    )
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"


def test_running_a_version_the_workflow_lacks_is_a_422_naming_it(
    tenant: Tenant, admin_key: IssuedKey
) -> None:
    workflow = workflow_create(tenant=tenant, spec=SPEC, actor="key:setup")
    response = client_for(admin_key).post(
        f"/api/v1/workflows/{workflow.id}/execute", {"version": 7}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "version"


def test_a_bad_last_event_id_query_is_a_400_even_beside_the_header(
    tenant: Tenant, admin_key: IssuedKey
) -> None:
    execution = Execution.objects.create(
        tenant=tenant, spec=SPEC, spec_digest="", workflow_name="x", status=Status.SUCCEEDED
    )
    response = client_for(admin_key).get(
        f"/api/v1/executions/{execution.id}/events?last_event_id=-1", HTTP_LAST_EVENT_ID="3"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "last_event_id"
