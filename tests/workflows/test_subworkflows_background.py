"""A background run (mode async, a run worker with checkpoints) of a workflow calling another."""

from typing import Any

import pytest

from executions.models import NodeRun
from tests.conftest import client_for, issue_key
from tests.fakes.providers import FakeOpenAIServer
from tests.observability.runs import finished, llm_chain, provider_ready, running_worker
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)  # the worker reads on its own connection


def test_a_background_run_runs_its_child_and_adds_up_its_tokens(
    tenant: Any, settings: Any, monkeypatch: Any, openai_server: FakeOpenAIServer
) -> None:
    provider_ready(tenant, settings, monkeypatch, openai_server.base_url)
    child = workflow_create(tenant=tenant, spec=llm_chain("child-chain"), actor="test")
    parent = workflow_create(
        tenant=tenant,
        spec={
            "name": "parent",
            "start_node": "input",
            "nodes": [
                {"id": "input", "type": "input"},
                {
                    "id": "chain",
                    "type": "workflow",
                    "metadata": {"workflow": child.id, "output": {"polished": "text_result"}},
                },
            ],
            "edges": [{"from": "input", "to": "chain"}],
        },
        actor="test",
    )
    client = client_for(issue_key(tenant, "developer"))
    answer = client.post(
        f"/api/v1/workflows/{parent.id}/execute",
        {"initial_state": {"user_input": "hello"}, "mode": "async"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    with running_worker():
        run = finished(answer.json()["execution_id"])
    assert run.status == "succeeded", run.error
    assert run.final_state is not None
    assert run.final_state["polished"].startswith("echo: ")
    rows = list(NodeRun.objects.filter(execution=run))
    assert sorted(r.node_id for r in rows) == [
        "chain",
        "chain/draft",
        "chain/input",
        "chain/polish",
        "input",
    ]
    assert run.tokens_used == sum(r.tokens for r in rows) > 0
    assert run.cost == sum(r.cost for r in rows) > 0
