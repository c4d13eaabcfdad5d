"""Queueing background runs, and the every-minute sweep for runs whose worker vanished.

A queued run is an `Execution` row with status `queued`: the run workers (`manage.py
runworker`, executions/worker.py) claim such rows themselves. Queueing one only wakes them.
"""

from executions.services import stale_runs
from executions.wakeup import notify_workers
from executions.worker import MAX_DELIVERIES, give_up_lost


def enqueue_run(execution_id: str) -> None:
    """Wake the workers for a queued run. In the transaction that created the execution the
    notification goes out when it commits (PostgreSQL), so a worker never looks too early."""
    notify_workers()


def reap_stale_runs() -> int:
    """Give up on runs lost too often (and on synchronous runs whose process died: their client
    was told they failed, so they are not run again); wake the workers for the rest, which
    take them over and resume them from their last checkpoint. Workers also do this by
    themselves every few seconds; this is the django-q2 schedule's entry point."""
    stale = stale_runs()
    give_up_lost(stale)
    resumable = stale.filter(deliveries__lt=MAX_DELIVERIES, mode="async").count()
    if resumable:
        notify_workers()
    return resumable


__all__ = ["enqueue_run", "reap_stale_runs"]
