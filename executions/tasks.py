"""Background work on django-q2 workers. Tasks take ids, not objects, and are idempotent."""

from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from executions.models import Execution, ExecutionEvent, Status
from executions.services import execution_run, heartbeat_stale
from workflows.services import workflow_validate

MAX_DELIVERIES = 3
"""A run taken up this many times (each after a lost worker) is given up as failed."""


def run_execution(execution_id: str) -> str:
    """Run (or resume) one execution. A delivery that finds it taken or finished does nothing."""
    execution = Execution.objects.select_related("tenant").get(pk=execution_id)
    validated = workflow_validate(spec=execution.spec, tenant=execution.tenant)
    if not validated.valid:
        # Also a run resumed after a crash whose spec no longer validates (a stored source was
        # deleted, a grant withdrawn): it ends here instead of being re-queued for ever.
        error = {"code": "invalid_workflow", "message": validated.errors[0].message}
        ended = Execution.objects.filter(pk=execution_id).filter(
            Q(status=Status.QUEUED)
            | Q(status=Status.RUNNING, heartbeat_at__lt=timezone.now() - heartbeat_stale())
        )
        if ended.update(status=Status.FAILED, error=error, finished_at=timezone.now()):
            ExecutionEvent.objects.create(
                execution=execution, kind="end", data={"status": Status.FAILED, "error": error}
            )
        return Status.FAILED
    return execution_run(execution_id=execution_id, validated=validated, durable=True).status


def enqueue_run(execution_id: str) -> None:
    """Queue the task. On the ORM broker this writes a row in the caller's transaction, so the
    execution and its task are committed together or not at all."""
    async_task(
        "executions.tasks.run_execution",
        execution_id,
        task_name=f"run-{execution_id}",
        group="executions",
    )


def reap_stale_runs() -> int:
    """Every minute (a django-q2 schedule): re-queue runs whose worker vanished, so another
    worker resumes them from their last checkpoint; give up on runs lost too often."""
    stale = Execution.objects.filter(
        status=Status.RUNNING, heartbeat_at__lt=timezone.now() - heartbeat_stale()
    )
    lost = {"code": "worker_lost", "message": "The run lost its worker too many times."}
    for execution in stale.filter(deliveries__gte=MAX_DELIVERIES):
        if Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(
            status=Status.FAILED, error=lost, finished_at=timezone.now()
        ):
            ExecutionEvent.objects.create(
                execution=execution, kind="end", data={"status": Status.FAILED, "error": lost}
            )
    resumed = 0
    for execution_id in stale.filter(deliveries__lt=MAX_DELIVERIES).values_list("pk", flat=True):
        enqueue_run(execution_id)
        resumed += 1
    return resumed


__all__ = ["enqueue_run", "reap_stale_runs", "run_execution"]
