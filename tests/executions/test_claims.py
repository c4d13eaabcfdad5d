"""Who may run and end an execution: claims, takeovers after a lost worker, fencing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from executions.models import Execution, ExecutionEvent
from executions.services import _claim, _finish, _Recorder

pytestmark = pytest.mark.django_db
SPEC = {"name": "x", "start_node": "input", "nodes": [{"id": "input", "type": "input"}]}


def execution(tenant, **fields) -> Execution:
    return Execution.objects.create(
        tenant=tenant, spec=SPEC, spec_digest="", workflow_name="x", **fields
    )


def test_a_second_delivery_of_a_claimed_run_does_nothing(tenant) -> None:
    run = execution(tenant)
    assert _claim(run.id, "worker-a") is True
    assert _claim(run.id, "worker-b") is False
    assert Execution.objects.get(pk=run.id).worker == "worker-a"


def test_a_run_whose_heartbeat_went_stale_is_taken_over(tenant, settings) -> None:
    settings.AGENTFLOW_HEARTBEAT_STALE = 5
    old = timezone.now() - timedelta(seconds=30)
    run = execution(tenant, status="running", worker="worker-a", heartbeat_at=old, deliveries=1)
    assert _claim(run.id, "worker-b") is True
    taken = Execution.objects.get(pk=run.id)
    assert (taken.worker, taken.deliveries) == ("worker-b", 2)


def test_a_lost_run_that_was_asked_to_stop_is_cancelled_not_resumed(tenant, settings) -> None:
    settings.AGENTFLOW_HEARTBEAT_STALE = 5
    old = timezone.now() - timedelta(seconds=30)
    run = execution(
        tenant, status="running", worker="worker-a", heartbeat_at=old, cancel_requested=True
    )
    assert _claim(run.id, "worker-b") is False
    assert Execution.objects.get(pk=run.id).status == "cancelled"
    assert ExecutionEvent.objects.filter(execution=run, kind="end").count() == 1


def test_a_worker_whose_run_was_taken_over_cannot_end_it_or_beat_for_it(tenant) -> None:
    run = execution(tenant, status="running", worker="worker-b", heartbeat_at=timezone.now())
    _finish(run, "succeeded", {"done": True}, None, 1.0, worker="worker-a")
    unchanged = Execution.objects.get(pk=run.id)
    assert unchanged.status == "running" and unchanged.final_state is None
    assert not ExecutionEvent.objects.filter(execution=run).exists()
    recorder = _Recorder(run, "worker-a")
    recorder.last_beat = timezone.now() - timedelta(seconds=10)
    assert recorder.tick() is True  # told to stop: the run is someone else's now
