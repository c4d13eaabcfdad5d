"""Comparing saved versions of a workflow, and restoring one, through the API."""

import random
from itertools import pairwise
from typing import Any

import jsonpatch
import pytest
from django.test import Client

from tenants.models import AuditEvent, Tenant
from tests.conftest import IssuedKey, client_for
from workflows.models import WorkflowVersion

pytestmark = pytest.mark.django_db
URL = "/api/v1/workflows"
EMPTY = {"added": [], "removed": [], "changed": [], "reordered": False}


def chain(*ids: str, template: str = "{{ user_input }}", **extra: Any) -> dict[str, Any]:
    """input → each aggregator in turn: runs with no provider."""
    nodes = [{"id": "input", "type": "input"}] + [
        {"id": i, "type": "aggregator", "metadata": {"strategy": "template", "template": template}}
        for i in ids
    ]
    order = ["input", *ids]
    edges = [{"from": a, "to": b} for a, b in pairwise(order)]
    return {"name": "chain", "start_node": "input", "nodes": nodes, "edges": edges, **extra}


def create(key: IssuedKey, spec: dict[str, Any]) -> str:
    response = client_for(key).post(URL, {"spec": spec}, format="json")
    assert response.status_code == 201, response.json()
    return str(response.json()["id"])


def save(key: IssuedKey, workflow_id: str, spec: dict[str, Any]) -> int:
    response = client_for(key).put(f"{URL}/{workflow_id}", {"spec": spec}, format="json")
    assert response.status_code == 200, response.json()
    return int(response.json()["version"])


def diff(key: IssuedKey, workflow_id: str, a: int, b: int) -> dict[str, Any]:
    response = client_for(key).get(f"{URL}/{workflow_id}/versions/{a}/diff/{b}")
    assert response.status_code == 200, response.json()
    return dict(response.json())


def spec_of(workflow_id: str, version: int) -> dict[str, Any]:
    return dict(WorkflowVersion.objects.get(workflow_id=workflow_id, version=version).spec)


def test_it_names_exactly_the_metadata_fields_that_changed(
    developer_key: IssuedKey, viewer_key: IssuedKey
) -> None:
    workflow_id = create(developer_key, chain("a", "b"))
    edited = chain("a", "b")
    edited["nodes"][1]["metadata"] = {
        "strategy": "template",
        "template": "new",
        "output_key": "out",
    }
    save(developer_key, workflow_id, edited)
    found = diff(viewer_key, workflow_id, 1, 2)
    assert (found["from"], found["to"]) == (1, 2)
    assert found["nodes"] == {
        **EMPTY,
        "changed": [{"id": "a", "fields": ["metadata.output_key", "metadata.template"]}],
    }
    assert found["edges"] == EMPTY and found["queues"] == EMPTY and found["sources"] == EMPTY
    assert found["other"] == []
    assert jsonpatch.apply_patch(spec_of(workflow_id, 1), found["patch"]) == spec_of(workflow_id, 2)


def test_it_lists_added_and_removed_nodes_and_edges(developer_key: IssuedKey) -> None:
    workflow_id = create(developer_key, chain("a", "b"))
    save(developer_key, workflow_id, chain("a", "c"))
    found = diff(developer_key, workflow_id, 1, 2)
    assert (found["nodes"]["added"], found["nodes"]["removed"]) == (["c"], ["b"])
    assert found["nodes"]["changed"] == []
    assert found["edges"]["added"] == [{"from": "a", "to": "c", "condition": None}]
    assert found["edges"]["removed"] == [{"from": "a", "to": "b", "condition": None}]
    back = diff(developer_key, workflow_id, 2, 1)
    assert (back["nodes"]["added"], back["nodes"]["removed"]) == (["b"], ["c"])


def routed(passes: int, **extra: Any) -> dict[str, Any]:
    """input → a → r, which loops back to a (`again`, at most `passes` times) or goes on to b."""
    spec = chain("a", "b", **extra)
    spec["nodes"].append(
        {
            "id": "r",
            "type": "router",
            "metadata": {"strategy": "keyword", "routes": {"again": ["x"]}, "default": "done"},
        }
    )
    spec["edges"] = [
        {"from": "input", "to": "a"},
        {"from": "a", "to": "r"},
        {"from": "r", "to": "a", "condition": "again", "loop": {"max_iterations": passes}},
        {"from": "r", "to": "b"},
    ]
    return spec


def test_it_reports_an_edges_loop_a_queue_a_source_and_other_fields(
    developer_key: IssuedKey, tenant: Tenant
) -> None:
    tenant.allowed_env = ["MY_KEY"]
    tenant.save()
    workflow_id = create(developer_key, chain("a", "b"))
    second = routed(2, description="two", limits={"max_steps": 7})
    second["queues"] = [
        {"id": "q", "from": "input", "to": "a", "bandwidth": {"max_messages_per_second": 1}}
    ]
    second["sources"] = [
        {"id": "gpt", "kind": "openai", "config": {"model_name": "m", "api_key_env": "MY_KEY"}}
    ]
    save(developer_key, workflow_id, second)
    third = {**routed(3, description="two", limits={"max_steps": 7})}
    third["queues"] = [{**second["queues"][0], "bandwidth": {"max_messages_per_second": 2}}]
    third["sources"] = [{**second["sources"][0], "config": {"model_name": "n"}}]
    save(developer_key, workflow_id, third)

    found = diff(developer_key, workflow_id, 1, 2)
    assert found["other"] == ["description", "limits.max_steps"]
    assert found["nodes"] == {**EMPTY, "added": ["r"]}
    assert found["queues"] == {**EMPTY, "added": ["q"]}
    assert found["sources"] == {**EMPTY, "added": ["gpt"]}
    assert found["edges"]["added"] == [
        {"from": "a", "to": "r", "condition": None},
        {"from": "r", "to": "a", "condition": "again"},
        {"from": "r", "to": "b", "condition": None},
    ]
    assert found["edges"]["removed"] == [{"from": "a", "to": "b", "condition": None}]
    found = diff(developer_key, workflow_id, 2, 3)
    assert found["edges"]["changed"] == [
        {"from": "r", "to": "a", "condition": "again", "fields": ["loop.max_iterations"]}
    ]
    assert found["queues"]["changed"] == [
        {"id": "q", "fields": ["bandwidth.max_messages_per_second"]}
    ]
    assert found["sources"]["changed"] == [
        {"id": "gpt", "fields": ["config.api_key_env", "config.model_name"]}
    ]
    assert found["other"] == [] and found["nodes"] == EMPTY
    assert found["edges"]["added"] == found["edges"]["removed"] == []


def test_a_version_against_itself_is_an_empty_diff(developer_key: IssuedKey) -> None:
    workflow_id = create(developer_key, chain("a"))
    found = diff(developer_key, workflow_id, 1, 1)
    assert found == {
        "from": 1,
        "to": 1,
        "nodes": EMPTY,
        "edges": EMPTY,
        "queues": EMPTY,
        "sources": EMPTY,
        "other": [],
        "patch": [],
    }


def _edit(rng: random.Random, ids: list[str]) -> tuple[list[str], dict[str, Any]]:
    """A random-ish next version: nodes inserted, dropped and reordered, templates and limits."""
    ids = list(ids)
    for _ in range(rng.randint(1, 3)):
        move = rng.choice(["insert", "drop", "swap"])
        if move == "insert" or len(ids) < 2:
            ids.insert(rng.randint(0, len(ids)), f"n{rng.randint(0, 999)}")
            ids = list(dict.fromkeys(ids))
        elif move == "drop":
            ids.pop(rng.randrange(len(ids)))
        else:
            i, j = rng.sample(range(len(ids)), 2)
            ids[i], ids[j] = ids[j], ids[i]
    spec = chain(*ids, template=rng.choice(["x", "y {{ user_input }}", "z"]))
    if rng.random() < 0.5:
        spec["limits"] = {"max_steps": rng.randint(10, 50)}
    if rng.random() < 0.5:
        spec["description"] = rng.choice(["one", "two", ""])
    if rng.random() < 0.3:
        spec["nodes"][1:] = rng.sample(spec["nodes"][1:], len(spec["nodes"]) - 1)
    return ids, spec


def test_the_json_patch_turns_one_version_into_the_other(developer_key: IssuedKey) -> None:
    rng = random.Random(21)
    ids = ["a", "b", "c"]
    workflow_id = create(developer_key, chain(*ids))
    version = 1
    for _ in range(8):
        ids, spec = _edit(rng, ids)
        version = save(developer_key, workflow_id, spec)
    assert version > 5
    for a in range(1, version + 1):
        for b in range(1, version + 1):
            found = diff(developer_key, workflow_id, a, b)
            patched = jsonpatch.apply_patch(spec_of(workflow_id, a), found["patch"])
            assert patched == spec_of(workflow_id, b), (a, b, found["patch"])


def test_restore_saves_an_old_version_as_the_current_one(developer_key: IssuedKey) -> None:
    workflow_id = create(developer_key, chain("a", template="first"))
    save(developer_key, workflow_id, chain("a", "b", template="second"))
    response = client_for(developer_key).post(f"{URL}/{workflow_id}/versions/1/restore")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["version"], body["node_count"]) == (3, 2)
    assert body["spec"] == spec_of(workflow_id, 1) == spec_of(workflow_id, 3)
    event = AuditEvent.objects.get(action="workflow.restore")
    assert (event.target_id, event.details) == (workflow_id, {"version": 3, "restored": 1})
    assert event.actor == f"key:{developer_key.prefix}"
    assert diff(developer_key, workflow_id, 1, 3)["patch"] == []


def test_restoring_the_current_spec_saves_nothing_new(developer_key: IssuedKey) -> None:
    workflow_id = create(developer_key, chain("a"))
    response = client_for(developer_key).post(f"{URL}/{workflow_id}/versions/1/restore")
    assert (response.status_code, response.json()["version"]) == (200, 1)
    assert not AuditEvent.objects.filter(action="workflow.restore").exists()


def test_a_version_that_no_longer_validates_is_a_422_naming_why(
    developer_key: IssuedKey, tenant: Tenant
) -> None:
    tenant.allowed_env = ["MY_KEY"]
    tenant.save()
    spec = chain("a")
    spec["sources"] = [
        {"id": "gpt", "kind": "openai", "config": {"model_name": "m", "api_key_env": "MY_KEY"}}
    ]
    workflow_id = create(developer_key, spec)
    save(developer_key, workflow_id, chain("a", "b"))
    tenant.allowed_env = []
    tenant.save()
    response = client_for(developer_key).post(f"{URL}/{workflow_id}/versions/1/restore")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert any("MY_KEY" in e["message"] for e in response.json()["errors"])
    assert WorkflowVersion.objects.filter(workflow_id=workflow_id).count() == 2
    assert not AuditEvent.objects.filter(action="workflow.restore").exists()


def test_a_viewer_reads_diffs_but_may_not_restore(
    developer_key: IssuedKey, viewer_key: IssuedKey, executor_key: IssuedKey
) -> None:
    workflow_id = create(developer_key, chain("a"))
    save(developer_key, workflow_id, chain("b"))
    assert client_for(viewer_key).get(f"{URL}/{workflow_id}/versions/1/diff/2").status_code == 200
    for key in (viewer_key, executor_key):
        response = client_for(key).post(f"{URL}/{workflow_id}/versions/1/restore")
        assert response.status_code == 403
    assert WorkflowVersion.objects.filter(workflow_id=workflow_id).count() == 2


@pytest.mark.parametrize(
    "path",
    [
        "versions/3/diff/1",
        "versions/1/diff/3",
        "versions/0/diff/1",
        f"versions/1/diff/{2**31}",
        f"versions/{10**30}/diff/1",
        "versions/3/restore",
        f"versions/{10**30}/restore",
    ],
)
def test_an_unknown_version_is_a_404(developer_key: IssuedKey, path: str) -> None:
    workflow_id = create(developer_key, chain("a"))
    save(developer_key, workflow_id, chain("b"))
    client = client_for(developer_key)
    send = client.post if path.endswith("restore") else client.get
    response = send(f"{URL}/{workflow_id}/{path}")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_another_tenants_workflow_is_a_404(
    developer_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    theirs = create(other_admin_key, chain("a"))
    save(other_admin_key, theirs, chain("b"))
    mine = client_for(developer_key)
    assert mine.get(f"{URL}/{theirs}/versions/1/diff/2").status_code == 404
    assert mine.post(f"{URL}/{theirs}/versions/1/restore").status_code == 404
    assert WorkflowVersion.objects.filter(workflow_id=theirs).count() == 2


def test_the_admin_page_of_an_old_version_lists_what_changed_since(
    developer_key: IssuedKey, admin_client: Client
) -> None:
    workflow_id = create(developer_key, chain("a", "b", template="old"))
    save(developer_key, workflow_id, chain("a", "c", template="new"))
    page = admin_client.get(f"/admin/workflows/workflow/{workflow_id}/versions/1/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Compared with the current version (2)" in text
    for line in ("node c: added", "node b: removed", "node a: metadata.template"):
        assert f"<li>{line}</li>" in text, line
    assert "edge a → c: added" in text
    current = admin_client.get(f"/admin/workflows/workflow/{workflow_id}/versions/2/")
    assert "Compared with the current version" not in current.content.decode()
