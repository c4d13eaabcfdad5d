"""Execution history as a user sees it: newest first, cursor pages, filters, full traces."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from executions.models import Execution
from tenants.models import Tenant
from tests.conftest import IssuedKey, client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/executions"
WORKFLOWS = "/api/v1/workflows"


def greeter(name: str = "greeter", template: str = "{{ user_input }}!") -> dict[str, Any]:
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "answer",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": template},
            },
        ],
        "edges": [{"from": "input", "to": "answer"}],
    }


def store(key: IssuedKey, name: str = "greeter") -> str:
    response = client_for(key).post(WORKFLOWS, {"spec": greeter(name)}, format="json")
    assert response.status_code == 201, response.json()
    return str(response.json()["id"])


def run(key: IssuedKey, workflow_id: str, state: dict[str, Any] | None = None) -> str:
    body = {"initial_state": {"user_input": "hi"} if state is None else state}
    response = client_for(key).post(f"{WORKFLOWS}/{workflow_id}/execute", body, format="json")
    assert response.status_code == 200, response.json()
    return str(response.json()["execution_id"])


def ids(page: dict[str, Any]) -> list[str]:
    return [row["id"] for row in page["results"]]


def test_the_history_lists_runs_newest_first_in_cursor_pages(
    developer_key: IssuedKey, viewer_key: IssuedKey
) -> None:
    workflow = store(developer_key)
    runs = [run(developer_key, workflow) for _ in range(5)]
    client = client_for(viewer_key)
    first = client.get(URL, {"page_size": 2}).json()
    assert set(first) == {"next", "previous", "results"}
    assert ids(first) == runs[::-1][:2]
    row = first["results"][0]
    assert row["status"] == "succeeded"
    assert row["workflow"] == workflow
    assert row["workflow_version"] == 1
    assert row["workflow_name"] == "greeter"
    assert row["created_by"] == f"key:{developer_key.prefix}"
    assert row["created_at"] and row["finished_at"]
    assert "nodes" not in row
    assert "final_state" not in row
    second = client.get(first["next"]).json()
    assert ids(second) == runs[::-1][2:4]
    third = client.get(second["next"]).json()
    assert ids(third) == runs[:1]
    assert third["next"] is None
    assert ids(client.get(third["previous"]).json()) == runs[::-1][2:4]
    numbered = client.get(URL, {"page": 2})  # /workflows' style: refused, saying why
    assert numbered.status_code == 400
    assert numbered.json()["errors"][0]["field"] == "page"
    assert "follow the `next` link" in numbered.json()["errors"][0]["message"]


def test_a_new_run_does_not_shift_the_next_page(developer_key: IssuedKey) -> None:
    workflow = store(developer_key)
    runs = [run(developer_key, workflow) for _ in range(3)]
    client = client_for(developer_key)
    first = client.get(URL, {"page_size": 2}).json()
    run(developer_key, workflow)
    assert ids(client.get(first["next"]).json()) == runs[:1]


def test_the_history_filters_by_status_workflow_and_time(
    developer_key: IssuedKey, tenant: Tenant
) -> None:
    greeter_id = store(developer_key, "greeter")
    other_id = store(developer_key, "other")
    ok = run(developer_key, greeter_id)
    failed = run(developer_key, greeter_id, state={})  # the input node wants user_input
    other = run(developer_key, other_id)
    old = run(developer_key, other_id)
    a_week_ago = timezone.now() - timedelta(days=7)
    Execution.objects.filter(pk=old).update(created_at=a_week_ago)
    client = client_for(developer_key)

    assert client.get(f"{URL}/{failed}").json()["status"] == "failed"
    assert ids(client.get(URL, {"status": "failed"}).json()) == [failed]
    assert ids(client.get(URL, {"status": "succeeded"}).json()) == [other, ok, old]
    assert ids(client.get(URL, {"workflow": greeter_id}).json()) == [failed, ok]
    assert ids(client.get(URL, {"workflow": other_id, "status": "succeeded"}).json()) == [
        other,
        old,
    ]
    cut = (a_week_ago + timedelta(days=1)).isoformat()
    assert ids(client.get(URL, {"created_before": cut}).json()) == [old]
    assert ids(client.get(URL, {"created_after": cut}).json()) == [other, failed, ok]


def test_a_bad_status_filter_is_a_400_naming_it(viewer_key: IssuedKey) -> None:
    response = client_for(viewer_key).get(URL, {"status": "exploded"})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["status"]


def test_filtering_by_another_tenants_workflow_is_a_404(
    developer_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    theirs = store(other_admin_key)
    run(other_admin_key, theirs)
    response = client_for(developer_key).get(URL, {"workflow": theirs})
    assert response.status_code == 404
    assert client_for(developer_key).get(URL, {"workflow": "wf_0000"}).status_code == 404


def test_another_tenants_runs_never_show(
    developer_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    theirs = run(other_admin_key, store(other_admin_key))
    mine = run(developer_key, store(developer_key))
    client = client_for(developer_key)
    assert ids(client.get(URL).json()) == [mine]
    assert client.get(f"{URL}/{theirs}").status_code == 404


def test_a_workflows_history_lists_only_its_own_runs(developer_key: IssuedKey) -> None:
    greeter_id = store(developer_key, "greeter")
    other_id = store(developer_key, "other")
    first = run(developer_key, greeter_id)
    run(developer_key, other_id)
    second = run(developer_key, greeter_id)
    client = client_for(developer_key)
    page = client.get(f"{WORKFLOWS}/{greeter_id}/executions").json()
    assert ids(page) == [second, first]
    assert "next" in page
    assert ids(client.get(f"{WORKFLOWS}/{greeter_id}/executions", {"page_size": 1}).json()) == [
        second
    ]
    ad_hoc = client.post(
        f"{WORKFLOWS}/execute",
        {"workflow": greeter("greeter"), "initial_state": {"user_input": "x"}},
        format="json",
    )
    assert ad_hoc.status_code == 200
    assert ids(client.get(f"{WORKFLOWS}/{greeter_id}/executions").json()) == [second, first]


def test_another_tenants_workflow_history_is_a_404(
    developer_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    theirs = store(other_admin_key)
    run(other_admin_key, theirs)
    response = client_for(developer_key).get(f"{WORKFLOWS}/{theirs}/executions")
    assert response.status_code == 404


def test_an_execution_shows_its_states_and_full_per_node_trace(
    developer_key: IssuedKey, viewer_key: IssuedKey
) -> None:
    workflow = store(developer_key)
    execution = run(developer_key, workflow)
    response = client_for(viewer_key).get(f"{URL}/{execution}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == execution
    assert body["status"] == "succeeded"
    assert (body["workflow"], body["workflow_version"]) == (workflow, 1)
    assert body["initial_state"] == {"user_input": "hi"}
    assert body["final_state"]["final_output"] == "hi!"
    assert body["error"] is None
    assert body["spec_digest"]
    assert body["started_at"] and body["finished_at"]
    assert body["execution_time"] >= 0
    nodes = body["nodes"]
    assert [n["node_id"] for n in nodes] == ["input", "answer"]
    assert [n["node_type"] for n in nodes] == ["input", "aggregator"]
    for node in nodes:
        assert node["status"] == "succeeded"
        assert node["started_at"]
        assert node["duration"] >= 0
        assert (node["tokens"], node["cost"], node["error"]) == (0, 0.0, None)
    assert nodes[1]["output"] == "hi!"


def test_a_failed_run_shows_the_error_in_its_trace(developer_key: IssuedKey) -> None:
    execution = run(developer_key, store(developer_key), state={})
    body = client_for(developer_key).get(f"{URL}/{execution}").json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "invalid_input"
    failed = [n for n in body["nodes"] if n["status"] == "failed"]
    assert [n["node_id"] for n in failed] == ["input"]
    assert failed[0]["error"]


def test_an_unknown_execution_is_a_404(viewer_key: IssuedKey) -> None:
    response = client_for(viewer_key).get(f"{URL}/exec_0123456789abcdef")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_a_deleted_workflows_runs_stay_in_the_history(developer_key: IssuedKey) -> None:
    workflow = store(developer_key)
    execution = run(developer_key, workflow)
    assert client_for(developer_key).delete(f"{WORKFLOWS}/{workflow}").status_code == 204
    client = client_for(developer_key)
    assert ids(client.get(URL).json()) == [execution]
    assert ids(client.get(URL, {"workflow": workflow}).json()) == [execution]
    assert client.get(f"{URL}/{execution}").json()["workflow"] == workflow


def test_the_trace_keeps_a_retry_in_the_loop_pass_it_retries(viewer_key: IssuedKey) -> None:
    from tests.executions.test_run_view import looped_run

    execution = looped_run(viewer_key.row.tenant)
    body = client_for(viewer_key).get(f"{URL}/{execution.id}").json()
    assert [(n["node_id"], n["attempt"], n["loop_pass"]) for n in body["nodes"]] == [
        ("input", 1, 1),
        ("draft", 1, 1),
        ("critic", 1, 1),
        ("draft", 1, 2),
        ("draft", 2, 2),
        ("critic", 1, 2),
        ("publish", 1, 1),
    ]
