"""What a live server seldom shows, on a scripted transport: a 429 retried after its
Retry-After (or not), a dropped event stream resumed with Last-Event-ID, a problem that is
not JSON, and pages followed through their cursor."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from agentflow_client import (
    NO_RETRY,
    AgentFlow,
    AsyncAgentFlow,
    RateLimited,
    RetryPolicy,
    ServerError,
)

URL = "http://agentflow.test"
EXECUTION: dict[str, Any] = {
    "id": "exec_1",
    "status": "running",
    "mode": "async",
    "workflow": None,
    "workflow_version": None,
    "workflow_name": "x",
    "tokens_used": 0,
    "cost": 0.0,
    "error": None,
    "created_by": "key:abc",
    "created_at": "2026-12-01T00:00:00Z",
    "started_at": None,
    "finished_at": None,
    "execution_time": None,
    "initial_state": {},
    "final_state": None,
    "waiting_for": None,
    "nodes": [],
}
ME: dict[str, Any] = {"tenant": "acme", "tenant_name": "Acme", "role": "viewer"}
ME |= {"key_prefix": "abc", "key_name": None, "expires_at": None, "user": None}
THROTTLED = {"type": "about:blank", "title": "Throttled", "status": 429, "detail": "slow down"}


def scripted(answers: list[httpx2.Response], seen: list[httpx2.Request]) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return answers.pop(0)

    return httpx2.MockTransport(handle)


def client(transport: httpx2.MockTransport, slept: list[float], **kwargs: Any) -> AgentFlow:
    return AgentFlow(URL, "k.s", transport=transport, sleep=slept.append, **kwargs)


def throttled(after: str) -> httpx2.Response:
    return httpx2.Response(429, json=THROTTLED, headers={"Retry-After": after})


def test_a_429_is_retried_once_after_its_retry_after() -> None:
    seen: list[httpx2.Request] = []
    slept: list[float] = []
    af = client(scripted([throttled("2"), httpx2.Response(200, json=ME)], seen), slept)
    assert af.me().tenant == "acme"
    assert slept == [2.0] and len(seen) == 2
    assert seen[0].headers["X-API-Key"] == "k.s"


def test_a_429_is_raised_when_retries_are_off_or_spent_or_the_wait_is_too_long() -> None:
    slept: list[float] = []
    for policy, answers in (
        (NO_RETRY, [throttled("1")]),
        (RetryPolicy(max_retries=1), [throttled("1"), throttled("3")]),
        (RetryPolicy(max_retries=3, max_wait=5), [throttled("60")]),
    ):
        af = client(scripted(answers, []), slept, retry=policy)
        with pytest.raises(RateLimited) as limited:
            af.me()
        assert limited.value.status == 429 and limited.value.detail == "slow down"
        assert limited.value.retry_after is not None
    assert slept == [1.0]


def test_an_answer_that_is_not_json_is_still_a_problem() -> None:
    af = client(scripted([httpx2.Response(502, text="<html>bad gateway</html>")], []), [])
    with pytest.raises(ServerError) as failed:
        af.me()
    assert failed.value.status == 502 and "bad gateway" in failed.value.detail


def test_pages_are_followed_through_their_cursor_on_the_same_path() -> None:
    seen: list[httpx2.Request] = []
    first = {"next": "http://elsewhere/api/v1/executions?cursor=abc&status=running"}
    answers = [
        httpx2.Response(200, json={**first, "previous": None, "results": [EXECUTION]}),
        httpx2.Response(200, json={"next": None, "previous": None, "results": [EXECUTION]}),
    ]
    af = client(scripted(answers, seen), [])
    assert [e.id for e in af.list_executions(status="running")] == ["exec_1", "exec_1"]
    assert [str(r.url) for r in seen] == [
        f"{URL}/api/v1/executions?status=running",
        f"{URL}/api/v1/executions?cursor=abc&status=running",
    ]
    with pytest.raises(TypeError):
        af.list_executions(colour="blue")


def sse(*events: tuple[int, str, dict[str, Any]]) -> str:
    lines = ["retry: 10", ""]
    for event_id, kind, data in events:
        lines += [f"id: {event_id}", f"event: {kind}", f"data: {json.dumps(data)}", ""]
    return "\n".join(lines) + "\n: keep-alive\n\n"


def dropped_stream() -> tuple[list[httpx2.Response], Callable[[list[httpx2.Request]], None]]:
    """A stream cut after two events (the run still running), then the rest on reconnection."""
    answers = [
        httpx2.Response(200, text=sse((1, "node_started", {}), (2, "node_finished", {}))),
        httpx2.Response(200, json=EXECUTION),
        httpx2.Response(200, text=sse((3, "end", {"status": "succeeded"}))),
    ]

    def check(seen: list[httpx2.Request]) -> None:
        assert "Last-Event-ID" not in seen[0].headers
        assert seen[1].url.path == "/api/v1/executions/exec_1"
        assert seen[2].headers["Last-Event-ID"] == "2"

    return answers, check


def test_a_dropped_event_stream_is_resumed_after_the_last_event() -> None:
    answers, check = dropped_stream()
    seen: list[httpx2.Request] = []
    slept: list[float] = []
    events = list(client(scripted(answers, seen), slept).events("exec_1"))
    assert [(e.id, e.event) for e in events] == [
        (1, "node_started"),
        (2, "node_finished"),
        (3, "end"),
    ]
    assert events[-1].data == {"status": "succeeded"}
    assert slept == [0.01]  # the server's `retry:`
    check(seen)


def test_the_async_client_resumes_a_dropped_stream_too() -> None:
    answers, check = dropped_stream()
    seen: list[httpx2.Request] = []

    async def nap(seconds: float) -> None:
        pass

    async def follow() -> list[int | None]:
        transport = scripted(answers, seen)
        async with AsyncAgentFlow(URL, "k.s", transport=transport, sleep=nap) as af:
            return [e.id async for e in af.events("exec_1")]

    assert asyncio.run(follow()) == [1, 2, 3]
    check(seen)


def test_a_stream_that_closes_after_its_run_ended_is_not_reopened() -> None:
    ended = {**EXECUTION, "status": "failed"}
    answers = [httpx2.Response(200, text="retry: 1000\n\n"), httpx2.Response(200, json=ended)]
    assert list(client(scripted(answers, []), []).events("exec_1")) == []


def test_replay_import_and_estimate_send_only_what_was_given() -> None:
    accepted = {"execution_id": "exec_2", "status": "queued"}
    answers = [
        httpx2.Response(202, json=accepted, headers={"Location": "/api/v1/executions/exec_2"}),
        httpx2.Response(200, json=accepted),
        httpx2.Response(201, json={"workflow": {"id": "wf_1"}, "format": "dify", "report": {}}),
        httpx2.Response(200, json={"valid": True, "errors": [], "warnings": [], "estimate": None}),
    ]
    seen: list[httpx2.Request] = []
    af = client(scripted(answers, seen), [])
    assert af.replay("exec_1", mode="async", from_node="b").location == "/api/v1/executions/exec_2"
    af.replay("exec_1")
    imported = af.import_workflow("app: {}\n", source_map={"openai": "gpt"})
    assert imported.workflow.id == "wf_1" and imported.format == "dify"
    assert af.validate({"name": "x"}, estimate=True).estimate is None
    bodies = [json.loads(r.content) for r in seen]
    assert bodies[0] == {"mode": "async", "from_node": "b"} and bodies[1] == {}
    assert bodies[2] == {"document": "app: {}\n", "source_map": {"openai": "gpt"}}
    assert seen[3].url.params["estimate"] == "true" and bodies[3]["initial_state"] == {}
    with pytest.raises(ValueError, match="estimate=True"):
        af.validate({"name": "x"}, initial_state={"user_input": "hi"})
