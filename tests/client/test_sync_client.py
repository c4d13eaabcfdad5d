"""The blocking client against a live AgentFlow (uvicorn + a run worker on PostgreSQL):
validate, store, run at once and in the background following its events, read, list,
cancel, replay, estimate, export and import; and each error answer as its own exception
carrying the problem's fields."""

import json
from typing import Any

import pytest
from agentflow_client import (
    AgentFlow,
    AuthenticationError,
    BadRequest,
    Conflict,
    Imported,
    InvalidRequest,
    NotFound,
    Run,
)

from tests.client.conftest import DIFY_SAMPLE, OFFLINE_DEMO, PRICES, SLOW_CALL, slow_spec
from tests.conftest import IssuedKey
from tests.fakes.providers import FakeOpenAIServer
from tests.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ASK = {"user_input": "what are your prices?"}


@pytest.fixture
def af(server: Stack, key: IssuedKey) -> Any:
    with AgentFlow(server.url, key.secret, timeout=60) as client:
        yield client


def test_it_validates_stores_and_runs_a_workflow_at_once(af: AgentFlow, tenant: Any) -> None:
    assert af.me().tenant == tenant.slug
    assert af.validate(OFFLINE_DEMO).valid

    workflow = af.create_workflow(OFFLINE_DEMO)
    assert workflow.id.startswith("wf_") and workflow.version == 1
    assert af.get_workflow(workflow.id).spec["name"] == "offline-demo"
    updated = af.update_workflow(workflow.id, {**OFFLINE_DEMO, "description": "v2"})
    assert (updated.version, updated.description) == (2, "v2")
    assert [w.id for w in af.list_workflows()] == [workflow.id]

    run = af.execute(workflow.id, ASK)
    assert isinstance(run, Run) and not run.accepted
    assert run.succeeded and run.final_state is not None
    assert run.final_state["final_output"].splitlines()[0] == PRICES

    inline = af.execute(OFFLINE_DEMO, {"user_input": "hello"})
    assert inline.final_state == af.get_execution(inline.execution_id).final_state

    execution = af.get_execution(run.execution_id)
    assert execution.status == "succeeded" and execution.workflow == workflow.id
    assert [n.node_id for n in execution.nodes] == ["input", "router", "catalogue", "answer"]
    assert execution.initial_state == ASK
    af.delete_workflow(workflow.id)
    with pytest.raises(NotFound):
        af.get_workflow(workflow.id)


def test_a_background_run_is_followed_through_its_events(af: AgentFlow) -> None:
    run = af.execute(OFFLINE_DEMO, ASK, background=True, idempotency_key="bg-1")
    assert run.accepted and run.location == f"/api/v1/executions/{run.execution_id}"
    assert run.status in ("queued", "running")

    events = list(af.events(run.execution_id))
    kinds = [e.event for e in events]
    assert kinds[-1] == "end" and events[-1].data["status"] == "succeeded"
    assert {"node_started", "node_finished"} <= set(kinds)
    ids = [e.id for e in events if e.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == len(events)

    # Reconnecting after an event gets exactly the rest (Last-Event-ID).
    assert [e.id for e in af.events(run.execution_id, last_event_id=ids[1])] == ids[2:]
    done = af.wait(run.execution_id, timeout=60)
    assert done.status == "succeeded" and done.final_state is not None
    assert done.final_state["final_output"].startswith(PRICES)

    again = af.execute(OFFLINE_DEMO, ASK, background=True, idempotency_key="bg-1")
    assert again.execution_id == run.execution_id  # the same key: the same execution
    assert again.succeeded and not again.accepted  # now answered with its outcome

    listed = list(af.list_executions(page_size=1))  # one a page: the cursor is followed
    assert run.execution_id in [e.id for e in listed] and len(listed) == 1
    assert [e.id for e in af.list_executions(status="succeeded")] == [run.execution_id]


def test_a_running_run_is_cancelled(af: AgentFlow, provider: FakeOpenAIServer) -> None:
    provider.script(times=1, delay=SLOW_CALL)
    run = af.execute(slow_spec("sync"), {"user_input": "hold"}, background=True)
    for event in af.events(run.execution_id):
        if event.event == "node_started" and event.data.get("node_id") == "ask":
            break
    stopped = af.cancel(run.execution_id)
    assert stopped.status in ("cancelled", "running")
    assert af.wait(run.execution_id, timeout=30).status == "cancelled"
    with pytest.raises(Conflict) as ended:
        af.cancel(run.execution_id)
    assert ended.value.status == 409


def test_errors_carry_the_problem_and_its_fields(af: AgentFlow, server: Stack) -> None:
    bad = {**OFFLINE_DEMO, "start_node": "nowhere"}
    result = af.validate(bad)
    assert not result.valid
    assert any(e.type == "missing_node" and e.path == "/start_node" for e in result.errors)

    with pytest.raises(InvalidRequest) as invalid:
        af.execute(bad, ASK)
    assert invalid.value.status == 422
    assert any(e.get("type") == "missing_node" for e in invalid.value.errors)

    with pytest.raises(BadRequest) as field:  # a body field: 400, naming it
        af.execute(OFFLINE_DEMO, ASK, timeout_seconds=-1)
    assert field.value.status == 400 and field.value.fields == ["timeout_seconds"]
    with pytest.raises(InvalidRequest) as version:
        af.execute(af.create_workflow(OFFLINE_DEMO).id, ASK, version=7)
    assert version.value.fields == ["version"]

    with pytest.raises(NotFound) as missing:
        af.get_execution("exec_" + "0" * 24)
    assert missing.value.problem.status == 404 and missing.value.title
    with pytest.raises(NotFound):  # the event stream's errors are problems too
        next(af.events("exec_" + "0" * 24))

    stranger = AgentFlow(server.url, "nope.nothing")
    with pytest.raises(AuthenticationError) as no:
        stranger.me()
    assert no.value.status == 401 and no.value.detail


def test_a_finished_run_is_replayed(af: AgentFlow) -> None:
    workflow = af.create_workflow(OFFLINE_DEMO)
    original = af.execute(workflow.id, ASK)
    again = af.replay(original.execution_id)  # the offline demo calls no provider
    assert isinstance(again, Run) and again.succeeded and not again.accepted
    assert again.final_state == original.final_state
    replay = af.get_execution(again.execution_id)
    assert (replay.replay_of, replay.replay_from_node) == (original.execution_id, "")
    assert af.get_execution(original.execution_id).replay_of is None

    queued = af.replay(
        original.execution_id, version=1, from_node="answer", mode="async", initial_state=ASK
    )
    assert queued.accepted
    done = af.wait(queued.execution_id, timeout=60)
    assert done.status == "succeeded" and done.replay_from_node == "answer"

    with pytest.raises(InvalidRequest) as nowhere:
        af.replay(original.execution_id, from_node="nowhere")
    assert nowhere.value.fields == ["from_node"]
    with pytest.raises(NotFound):
        af.replay("exec_" + "0" * 24)


def test_a_dry_run_estimates_tokens_and_cost(af: AgentFlow) -> None:
    result = af.validate(slow_spec("estimate"), estimate=True, initial_state={"user_input": "hi"})
    assert result.valid and result.estimate is not None
    (node,) = result.estimate.nodes
    assert (node.node_id, node.model, node.tokenizer) == ("ask", "gpt-4o-mini", "o200k_base")
    assert 0 < node.prompt_tokens <= node.prompt_tokens_max and node.cost > 0
    assert result.estimate.most_expensive is not None
    assert result.estimate.most_expensive.nodes == ["input", "ask"]
    assert af.validate(slow_spec("plain")).estimate is None  # not asked for
    bad = af.validate({**slow_spec("bad"), "start_node": "nowhere"}, estimate=True)
    assert not bad.valid and bad.estimate is None
    with pytest.raises(ValueError, match="estimate"):
        af.validate(OFFLINE_DEMO, initial_state=ASK)


def test_a_workflow_is_exported_and_imported_under_another_name(af: AgentFlow) -> None:
    workflow = af.create_workflow(OFFLINE_DEMO)
    af.update_workflow(workflow.id, {**OFFLINE_DEMO, "description": "v2"})
    document = af.export_workflow(workflow.id)
    assert document["format"] == "agentflow.workflow-export"
    assert [v["version"] for v in document["versions"]] == [1, 2]

    copy = af.import_workflow(document, name="demo-copy")
    assert isinstance(copy, Imported) and copy.format == "agentflow"
    assert (copy.workflow.name, copy.workflow.version) == ("demo-copy", 2)
    assert copy.workflow.id != workflow.id and copy.report["versions"] == 2
    assert af.get_workflow(copy.workflow.id).description == "v2"
    as_text = af.import_workflow(json.dumps(document), name="demo-text")  # JSON text too
    assert as_text.workflow.spec["nodes"] == copy.workflow.spec["nodes"]

    with pytest.raises(Conflict) as taken:
        af.import_workflow(document, name="demo-copy")
    assert taken.value.fields == ["name"]
    with pytest.raises(InvalidRequest) as unknown:
        af.import_workflow({"nodes": "no"}, format="agentflow")
    assert unknown.value.fields == ["format_version"]
    with pytest.raises(NotFound):
        af.export_workflow("wf_" + "0" * 24)


def test_a_dify_export_is_imported_with_its_report(af: AgentFlow) -> None:
    done = af.import_workflow(DIFY_SAMPLE, name="triage", api_key_env="OPENAI_API_KEY")
    assert done.format == "dify" and done.workflow.name == "triage"
    assert ("code", "1733000000005") in {(n["kind"], n["id"]) for n in done.report["not_mapped"]}
    assert {m["type"] for m in done.report["mapped"]} >= {"input", "llm"}
