"""A run's log lines as an operator reads them (the real JSON formatter): each names its
execution, workflow, node and trace where they apply, on the web process and on the worker
alike, and its lifecycle is logged once per event at INFO with its duration."""

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from agentflow_site.observability.tracing import start_tracing, stop_tracing
from executions.models import Execution
from tests.conftest import client_for, issue_key
from tests.observability.runs import (
    API_KEY,
    PROMPT_CANARY,
    finished,
    llm_chain,
    provider_ready,
    queue_stored_run,
    running_worker,
)

pytestmark = pytest.mark.django_db(transaction=True)  # the worker reads on its own connection

LIFECYCLE = ("execution_queued", "execution_started", "node_finished", "execution_ended")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every line logged meanwhile, rendered by the configured JSON formatter."""
    root = logging.getLogger()
    formatter = next(h.formatter for h in root.handlers if h.formatter is not None)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


@pytest.fixture
def tracing() -> Iterator[None]:
    provider = TracerProvider()  # no exporter: the ids are what the lines need
    start_tracing(provider)
    yield
    stop_tracing()
    provider.shutdown()


def _parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert PROMPT_CANARY not in text
    assert API_KEY not in text
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _run_async(tenant: Any, settings: Any, monkeypatch: Any, server: Any) -> tuple[str, str]:
    provider_ready(tenant, settings, monkeypatch, server.base_url)
    workflow_id, execution_id = queue_stored_run(client_for(issue_key(tenant, "developer")), tenant)
    with running_worker():
        assert finished(execution_id).status == "succeeded"
    return workflow_id, execution_id


def _of_run(lines: list[dict[str, Any]], execution_id: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("execution_id") == execution_id]


def test_an_async_runs_lifecycle_is_logged_once_per_event_with_its_ids(
    log_lines, tracing, tenant, settings, monkeypatch, openai_server
) -> None:
    workflow_id, execution_id = _run_async(tenant, settings, monkeypatch, openai_server)
    lines = _of_run(_parsed(log_lines), execution_id)
    events = Counter(line["event"] for line in lines if line["event"] in LIFECYCLE)
    assert events == {
        "execution_queued": 1,
        "execution_started": 1,
        "node_finished": 3,  # input, draft, polish: one attempt each
        "execution_ended": 1,
    }
    trace_ids = {line.get("trace_id") for line in lines}
    assert len(trace_ids) == 1 and None not in trace_ids  # one trace, named on every line
    assert all(line["workflow_id"] == workflow_id for line in lines)
    by_event = {line["event"]: line for line in lines if line["event"] in LIFECYCLE}
    assert all(by_event[name]["level"] == "info" for name in LIFECYCLE)
    assert by_event["execution_queued"]["request_id"]  # written by the request
    assert by_event["execution_started"]["queued_s"] >= 0
    ended = by_event["execution_ended"]
    assert ended["status"] == "succeeded" and ended["duration_s"] > 0
    assert ended["total_s"] >= ended["duration_s"]
    nodes = {line["node_id"]: line for line in lines if line["event"] == "node_finished"}
    assert set(nodes) == {"input", "draft", "polish"}
    assert nodes["draft"]["node_type"] == "llm" and nodes["draft"]["duration_s"] > 0
    assert nodes["draft"]["tokens"] > 0 and nodes["draft"]["status"] == "succeeded"
    # A library's line inside a node (the SDK's HTTP client) is named like the run's own.
    sdk = [line for line in lines if line.get("logger") == "httpx2"]
    assert {line["node_id"] for line in sdk} == {"draft", "polish"}


def test_without_tracing_the_lines_carry_the_same_ids_and_no_trace_id(
    log_lines, tenant, settings, monkeypatch, openai_server
) -> None:
    workflow_id, execution_id = _run_async(tenant, settings, monkeypatch, openai_server)
    lines = _of_run(_parsed(log_lines), execution_id)
    assert Counter(line["event"] for line in lines if line["event"] in LIFECYCLE) == {
        "execution_queued": 1,
        "execution_started": 1,
        "node_finished": 3,
        "execution_ended": 1,
    }
    assert all(line["workflow_id"] == workflow_id for line in lines)
    assert not any("trace_id" in line for line in lines)


def test_a_sync_runs_lines_carry_its_request_id_and_skip_queued(
    log_lines, tracing, tenant, settings, monkeypatch, openai_server
) -> None:
    provider_ready(tenant, settings, monkeypatch, openai_server.base_url)
    client = client_for(issue_key(tenant, "developer"))
    answer = client.post(
        "/api/v1/workflows/execute",
        {"workflow": llm_chain("sync-chain"), "initial_state": {"user_input": "hi"}},
        format="json",
        HTTP_X_REQUEST_ID="req-observability-1",
    )
    assert answer.status_code == 200, answer.content
    execution_id = answer.json()["execution_id"]
    lines = _of_run(_parsed(log_lines), execution_id)
    assert Counter(line["event"] for line in lines if line["event"] in LIFECYCLE) == {
        "execution_started": 1,
        "node_finished": 3,
        "execution_ended": 1,
    }
    assert all(line["request_id"] == "req-observability-1" for line in lines)
    trace = Execution.objects.get(pk=execution_id).trace_context.split("-")[1]
    assert {line["trace_id"] for line in lines} == {trace}
    assert "workflow_id" not in lines[0]  # an inline spec has no stored workflow


def test_a_failed_node_is_logged_with_its_error_code(
    log_lines, tenant, settings, monkeypatch, openai_server
) -> None:
    provider_ready(tenant, settings, monkeypatch, openai_server.base_url)
    openai_server.script(times=5, status=400, message="no")
    _, execution_id = queue_stored_run(client_for(issue_key(tenant, "developer")), tenant)
    with running_worker():
        assert finished(execution_id).status == "failed"
    lines = _of_run(_parsed(log_lines), execution_id)
    failed = [
        line for line in lines if line["event"] == "node_finished" and line["node_id"] == "draft"
    ]
    assert len(failed) == 1
    assert failed[0]["status"] == "failed" and failed[0]["error_code"] == "provider_error"
    ended = [line for line in lines if line["event"] == "execution_ended"]
    assert len(ended) == 1
    assert ended[0]["status"] == "failed" and ended[0]["error_code"] == "provider_error"
