"""Queueing background runs, the every-minute sweep for runs whose worker vanished, and the
daily prune of what retention no longer keeps.

A queued run is an `Execution` row with status `queued`: the run workers (`manage.py
runworker`, executions/worker.py) claim such rows themselves. Queueing one only wakes them.
"""

import structlog

from executions.approvals import waits_expire
from executions.retention import prune as retention_prune
from executions.services import stale_runs
from executions.wakeup import notify_workers
from executions.webhooks import webhooks_deliver_due
from executions.worker import MAX_DELIVERIES, give_up_lost

logger = structlog.get_logger(__name__)


def enqueue_run(execution_id: str) -> None:
    """Wake the workers for a queued run. In the transaction that created the execution the
    notification goes out when it commits (PostgreSQL), so a worker never looks too early."""
    notify_workers()


def reap_stale_runs() -> int:
    """Give up on runs lost too often (and on synchronous runs whose process died: their client
    was told they failed, so they are not run again); wake the workers for the rest, which
    take them over and resume them from their last checkpoint. Workers also do this by
    themselves every few seconds; this is the django-q2 schedule's entry point. Waits on a
    person that expired end (or take their `on_expiry` branch) here too."""
    waits_expire()
    stale = stale_runs()
    give_up_lost(stale)
    resumable = stale.filter(deliveries__lt=MAX_DELIVERIES, mode="async").count()
    if resumable:
        notify_workers()
    return resumable


def deliver_webhooks() -> int:
    """Send the completion webhooks that are due (a run's end wakes this; django-q2's
    every-minute schedule runs it for retries); how many were sent."""
    return webhooks_deliver_due()


def prune() -> dict[str, int]:
    """Delete the ended runs and audit events older than their tenant's retention (the daily
    `agentflow-prune` schedule); the totals that went."""
    totals: dict[str, int] = {}
    for result in retention_prune():
        for name, count in result.counts.items():
            totals[name] = totals.get(name, 0) + count
    logger.info("retention.pruned", **totals)
    return totals


__all__ = ["deliver_webhooks", "enqueue_run", "prune", "reap_stale_runs"]
