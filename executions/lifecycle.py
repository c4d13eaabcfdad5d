"""A run's lifecycle in the log: queued, started, ended, once each at INFO, with durations.

Each node attempt's end is logged by the runtime (runtime.telemetry.node_finished), inside the
run's own task, whose log context names the execution, its workflow and the node. These lines
are written where the run's row changes, often on a worker's database thread that serves every
run of the process: they name their run (and its trace) themselves.
"""

from typing import Any

import structlog
from django.utils import timezone

from agentflow_site.logging import run_fields
from executions.models import Execution

logger = structlog.get_logger("agentflow.run")


def run_labels(execution: Execution) -> dict[str, str]:
    """The log context of the run's task on the runtime loop (and its span's attributes)."""
    labels = run_fields(execution.pk, execution.workflow_id)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:  # a sync run: its request's lines and its own share the id
        labels["request_id"] = str(request_id)
    return labels


def _fields(execution: Execution) -> dict[str, Any]:
    return {
        **run_fields(execution.pk, execution.workflow_id, execution.trace_context),
        "tenant_id": execution.tenant_id,
        "mode": execution.mode,
    }


def log_queued(execution: Execution) -> None:
    logger.info("execution_queued", **_fields(execution), workflow_name=execution.workflow_name)


def log_started(execution: Execution, *, worker: str) -> None:
    """Taken up by `worker`; `queued_s`: how long it waited (a resumed run: since it was made)."""
    started = execution.started_at or timezone.now()
    waited = max(0.0, (started - execution.created_at).total_seconds())
    logger.info(
        "execution_started",
        **_fields(execution),
        worker=worker,
        delivery=execution.deliveries,
        queued_s=round(waited, 6),
    )


def log_ended(
    execution: Execution, status: str, execution_time: float, error: dict[str, Any] | None
) -> None:
    """`duration_s`: the run's own time; `total_s`: since it was made (queue wait included)."""
    total = (timezone.now() - execution.created_at).total_seconds()
    code = (error or {}).get("code")
    logger.info(
        "execution_ended",
        **_fields(execution),
        status=status,
        duration_s=round(execution_time or 0.0, 6),
        total_s=round(total, 6),
        **({"error_code": code} if code else {}),
    )
