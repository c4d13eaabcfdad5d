"""The asyncio client against a live AgentFlow: the same calls as the blocking one, awaited,
with lists and events as async iterators."""

import asyncio
from contextlib import aclosing
from typing import Any

import pytest
from agentflow_client import (
    AsyncAgentFlow,
    AuthenticationError,
    BadRequest,
    Conflict,
    InvalidRequest,
    NotFound,
)

from tests.client.conftest import DIFY_SAMPLE, OFFLINE_DEMO, PRICES, SLOW_CALL, slow_spec
from tests.conftest import IssuedKey
from tests.fakes.providers import FakeOpenAIServer
from tests.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ASK = {"user_input": "any prices?"}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_it_stores_runs_and_follows_a_workflow(server: Stack, key: IssuedKey) -> None:
    async def scenario() -> None:
        async with AsyncAgentFlow(server.url, key.secret, timeout=60) as af:
            assert (await af.me()).role == "developer"
            assert (await af.validate(OFFLINE_DEMO)).valid
            workflow = await af.create_workflow(OFFLINE_DEMO)
            assert [w.id async for w in af.list_workflows()] == [workflow.id]

            now = await af.execute(workflow, ASK)
            assert now.succeeded and now.final_state is not None
            assert now.final_state["final_output"].startswith(PRICES)

            later = await af.execute(workflow.id, ASK, background=True, version=1)
            assert later.accepted
            kinds = [e.event async for e in af.events(later.execution_id)]
            assert kinds[-1] == "end" and "node_finished" in kinds
            execution = await af.wait(later.execution_id, timeout=60)
            assert execution.status == "succeeded" and execution.workflow_version == 1
            assert execution.nodes[-1].node_id == "answer"
            ids = [e.id async for e in af.list_executions(workflow=workflow.id, page_size=1)]
            assert ids == [later.execution_id, now.execution_id]

    run(scenario())


def test_it_cancels_a_running_run(
    server: Stack, key: IssuedKey, provider: FakeOpenAIServer
) -> None:
    provider.script(times=1, delay=SLOW_CALL)

    async def scenario() -> None:
        async with AsyncAgentFlow(server.url, key.secret, timeout=60) as af:
            started = await af.execute(slow_spec("async"), {"user_input": "hold"}, background=True)
            async with aclosing(af.events(started.execution_id)) as events:
                async for event in events:
                    if event.event == "node_started" and event.data["node_id"] == "ask":
                        break
            await af.cancel(started.execution_id)
            assert (await af.wait(started.execution_id, timeout=30)).status == "cancelled"
            with pytest.raises(Conflict):
                await af.cancel(started.execution_id)

    run(scenario())


def test_its_errors_carry_the_problem(server: Stack, key: IssuedKey) -> None:
    async def scenario() -> None:
        async with AsyncAgentFlow(server.url, key.secret, timeout=60) as af:
            with pytest.raises(BadRequest) as invalid:
                await af.execute(OFFLINE_DEMO, {"user_input": "x"}, timeout_seconds=0)
            assert invalid.value.fields == ["timeout_seconds"]
            with pytest.raises(InvalidRequest) as bad_spec:
                await af.execute({**OFFLINE_DEMO, "nodes": []}, {"user_input": "x"})
            assert bad_spec.value.status == 422 and bad_spec.value.errors
            with pytest.raises(NotFound):
                await af.get_workflow("wf_" + "0" * 24)
        async with AsyncAgentFlow(server.url, key.secret + "x") as wrong:
            with pytest.raises(AuthenticationError) as refused:
                await wrong.me()
            assert refused.value.status == 401

    run(scenario())


def test_it_replays_a_run(server: Stack, key: IssuedKey) -> None:
    async def scenario() -> None:
        async with AsyncAgentFlow(server.url, key.secret, timeout=60) as af:
            original = await af.execute(OFFLINE_DEMO, ASK)  # an inline spec: no version
            again = await af.replay(original.execution_id, initial_state={"user_input": "hi"})
            assert again.succeeded
            replay = await af.get_execution(again.execution_id)
            assert replay.replay_of == original.execution_id
            assert replay.initial_state == {"user_input": "hi"}
            with pytest.raises(InvalidRequest) as version:
                await af.replay(original.execution_id, version=1)
            assert version.value.fields == ["version"]

    run(scenario())


def test_it_estimates_exports_and_imports(server: Stack, key: IssuedKey) -> None:
    async def scenario() -> None:
        async with AsyncAgentFlow(server.url, key.secret, timeout=60) as af:
            result = await af.validate(slow_spec("a"), estimate=True, initial_state=ASK)
            assert result.estimate is not None and result.estimate.currency == "USD"
            assert [n.node_id for n in result.estimate.nodes] == ["ask"]
            assert result.estimate.cheapest is not None and result.estimate.cheapest.cost > 0

            workflow = await af.create_workflow(OFFLINE_DEMO)
            document = await af.export_workflow(workflow.id)
            assert document["workflow"]["id"] == workflow.id
            copy = await af.import_workflow(document, name="async-copy")
            assert copy.workflow.name == "async-copy" and copy.report["versions"] == 1
            with pytest.raises(Conflict) as taken:
                await af.import_workflow(document, name="async-copy")
            assert taken.value.fields == ["name"]

            triage = await af.import_workflow(
                DIFY_SAMPLE, format="dify", name="triage", api_key_env="OPENAI_API_KEY"
            )
            assert triage.format == "dify"
            assert "code" in {n["kind"] for n in triage.report["not_mapped"]}

    run(scenario())
