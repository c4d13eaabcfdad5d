"""The trace written in batches reads as it was written one event at a time."""

from datetime import UTC, datetime, timedelta

import pytest

from executions.models import Execution, ExecutionEvent, NodeRun
from executions.recording import TraceWriter
from executions.runner import TokenEvent
from runtime.events import NodeFinished, NodeStarted

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _run(tenant) -> Execution:
    spec = {"name": "x", "start_node": "input", "nodes": [{"id": "input", "type": "input"}]}
    return Execution.objects.create(tenant=tenant, spec=spec, spec_digest="", workflow_name="x")


def _pass(node: str, second: int, output: str) -> tuple[NodeStarted, NodeFinished]:
    at = T0 + timedelta(seconds=second)
    return (
        NodeStarted(node, "llm", 1, at),
        NodeFinished(node, "llm", 1, at, 0.5, "succeeded", output=output, tokens=3),
    )


def test_a_loop_that_runs_a_node_twice_in_one_batch_keeps_both_passes(tenant) -> None:
    run = _run(tenant)
    events: list[NodeStarted | NodeFinished] = [
        *_pass("draft", 1, "d1"),
        *_pass("critic", 2, "c1"),
        *_pass("draft", 3, "d2"),
    ]
    TraceWriter().write((run.pk, event) for event in events)
    rows = list(NodeRun.objects.filter(execution=run).values_list("node_id", "output", "status"))
    assert rows == [
        ("draft", "d1", "succeeded"),
        ("critic", "c1", "succeeded"),
        ("draft", "d2", "succeeded"),
    ]
    kinds = list(ExecutionEvent.objects.filter(execution=run).values_list("kind", flat=True))
    assert kinds == ["node_started", "node_finished"] * 3


def test_a_node_started_in_one_batch_and_ended_in_the_next_is_one_row(tenant) -> None:
    run = _run(tenant)
    writer = TraceWriter()
    started, finished = _pass("draft", 1, "d1")
    writer.write([(run.pk, started)])
    assert NodeRun.objects.get(execution=run).status == "running"
    writer.write([(run.pk, TokenEvent("draft", "he")), (run.pk, TokenEvent("draft", "llo"))])
    writer.write([(run.pk, finished)])
    row = NodeRun.objects.get(execution=run)
    assert (row.status, row.output, row.tokens) == ("succeeded", "d1", 3)
    events = list(ExecutionEvent.objects.filter(execution=run).values_list("kind", "data"))
    assert [kind for kind, _ in events] == ["node_started", "token", "node_finished"]
    assert events[1][1] == {"node_id": "draft", "delta": "hello"}  # batched, before the end


def test_a_node_ended_by_a_writer_that_did_not_see_it_start_is_still_ended(tenant) -> None:
    run = _run(tenant)
    started, finished = _pass("draft", 1, "d1")
    TraceWriter().write([(run.pk, started)])
    TraceWriter().write([(run.pk, finished)])
    assert NodeRun.objects.get(execution=run).status == "succeeded"
