"""Runs that wait on a person (an approval node): the wait, the answer, the expiry.

A background run whose node asks a question ends its turn on the worker as `waiting`: its
state stays in its LangGraph checkpoint and no worker holds it (no slot, no heartbeat, so the
stale sweep never takes it for lost). An answer queues it again, carrying the answer; the
worker that takes it up resumes it from the checkpoint with `Command(resume=…)`. Transitions:
running → waiting → queued (answered, or expired with `on_expiry` an option) → running …;
waiting → cancelled (cancel); waiting → failed (expired with `on_expiry: fail`).
"""

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from agentflow_site.observability import metrics
from executions.lifecycle import log_ended
from executions.models import Execution, ExecutionEvent, Status
from executions.recording import money
from executions.wakeup import notify_workers
from executions.webhooks import webhooks_wake
from tenants.services import audit_record

EXPIRY = "expiry"
"""Who answered a wait that expired with `on_expiry` an option."""


class NotWaiting(Exception):
    """The run waits on nothing (it ended, runs, or was answered already)."""


class InvalidAnswer(Exception):
    """The answer is not one of the question's options."""


def execution_wait(
    execution_id: str,
    final_state: dict[str, Any] | None,
    waiting: dict[str, Any],
    execution_time: float,
    *,
    worker: str,
    **fields: Any,
) -> ExecutionEvent | None:
    """The worker lets go of a run that waits on `waiting` (a node's question): its row says
    what it waits on and the state it reached, and its `run_waiting` event is given to be
    saved. Fenced as `services.ending` is (None: another worker holds the run, or a cancel came
    first: the caller ends it as cancelled)."""
    now = timezone.now()
    seconds = waiting.get("expires_after_seconds")
    expires = now + timedelta(seconds=seconds) if seconds else None
    asked = {
        "node_id": waiting.get("node_id"),
        "question": waiting.get("question"),
        "options": waiting.get("options") or [],
        "on_expiry": waiting.get("on_expiry") or "fail",
        "expires_at": expires.isoformat() if expires else None,
        "since": now.isoformat(),
        "interrupt_id": waiting.get("interrupt_id"),
    }
    state = final_state or {}
    mine = Execution.objects.filter(
        pk=execution_id, status=Status.RUNNING, worker=worker, cancel_requested=False
    )
    if not mine.update(
        status=Status.WAITING,
        waiting_for=asked,
        wait_expires_at=expires,
        final_state=final_state,
        tokens_used=int(state.get("tokens_used") or 0),
        cost=money(float(state.get("cost") or 0)),
        execution_time=execution_time,
        worker="",
        heartbeat_at=None,
        **fields,
    ):
        return None
    shown = {k: asked[k] for k in ("node_id", "question", "options", "expires_at")}
    return ExecutionEvent(execution_id=execution_id, kind="run_waiting", data=shown)


def waiting_for(execution: Execution) -> dict[str, Any] | None:
    """What a waiting run asks, as the API shows it; None when it waits on nothing."""
    if execution.status != Status.WAITING or not execution.waiting_for:
        return None
    shown = ("node_id", "question", "options", "expires_at", "on_expiry", "since")
    return {key: execution.waiting_for.get(key) for key in shown}


def execution_resume(
    *, execution: Execution, answer: str, comment: str = "", actor: str
) -> Execution:
    """Answer the question the run waits on and queue it again, to go on from its checkpoint.
    The same answer sent again (a retried request) changes nothing and is not an error.

    Raises:
        InvalidAnswer: `answer` is not one of the question's options.
        NotWaiting: the run waits on nothing.
    """
    execution.refresh_from_db()
    asked = execution.waiting_for or {}
    if execution.status != Status.WAITING:
        if _same_answer(execution, answer, comment):
            return execution
        raise NotWaiting(f"Execution {execution.id} is {execution.status}, not waiting.")
    options = asked.get("options") or []
    if answer not in options:
        raise InvalidAnswer(f"Answer one of: {', '.join(options)}.")
    with transaction.atomic():
        if not _requeue(execution, answer=answer, comment=comment, by=actor):
            execution.refresh_from_db()
            if _same_answer(execution, answer, comment):
                return execution
            raise NotWaiting(f"Execution {execution.id} is {execution.status}, not waiting.")
        audit_record(
            tenant=execution.tenant,
            actor=actor,
            action="execution.resume",
            target_type="execution",
            target_id=execution.id,
            details={"node_id": asked.get("node_id"), "answer": answer},
        )
    execution.refresh_from_db()
    return execution


def _same_answer(execution: Execution, answer: str, comment: str) -> bool:
    """The run was answered this way already, on the question it last waited on."""
    given, asked = execution.answer or {}, execution.waiting_for or {}
    return (
        given.get("interrupt_id") == asked.get("interrupt_id")
        and given.get("answer") == answer
        and given.get("comment", "") == comment
        and given.get("by") != EXPIRY
    )


def _requeue(execution: Execution, *, answer: str, comment: str, by: str) -> bool:
    """The conditional update waiting → queued, with its answer, its event and the workers
    woken when it commits. False: it was not waiting (any more)."""
    asked = execution.waiting_for or {}
    given = {
        "interrupt_id": asked.get("interrupt_id"),
        "node_id": asked.get("node_id"),
        "answer": answer,
        "comment": comment,
        "by": by,
        "at": timezone.now().isoformat(),
    }
    waiting = Execution.objects.filter(
        pk=execution.pk, status=Status.WAITING, waiting_for__interrupt_id=asked.get("interrupt_id")
    )
    # deliveries counts take-ups since the last answer: a run with many questions is not
    # given up as "lost too often" for answers it was given.
    if not waiting.update(status=Status.QUEUED, answer=given, wait_expires_at=None, deliveries=0):
        return False
    shown = {k: given[k] for k in ("node_id", "answer", "comment", "by")}
    ExecutionEvent.objects.create(execution_id=execution.pk, kind="run_resumed", data=shown)
    notify_workers()
    return True


def waits_expire(limit: int = 100) -> int:
    """End or answer the waits whose time is up, as each question's `on_expiry` says; how
    many. Run by every worker's claim pass and by django-q2's every-minute sweep: each change
    is a conditional update, so two sweeps never act twice on one wait."""
    now = timezone.now()
    due = Execution.objects.filter(status=Status.WAITING, wait_expires_at__lte=now)
    done = 0
    for execution in due.select_related("tenant")[:limit]:
        asked = execution.waiting_for or {}
        on_expiry = asked.get("on_expiry") or "fail"
        with transaction.atomic():
            if on_expiry == "fail":
                done += _expire(execution, asked)
            else:
                done += _requeue(execution, answer=on_expiry, comment="", by=EXPIRY)
    return done


def _expire(execution: Execution, asked: dict[str, Any]) -> bool:
    error = {
        "code": "approval_expired",
        "message": f"Node '{asked.get('node_id')}' waited for an answer until "
        f"{asked.get('expires_at')}; none came.",
        "node_id": asked.get("node_id"),
    }
    ended = Execution.objects.filter(pk=execution.pk, status=Status.WAITING).update(
        status=Status.FAILED, error=error, finished_at=timezone.now()
    )
    if ended:
        _ended(execution, Status.FAILED, error)
    return bool(ended)


def execution_cancel_waiting(*, execution: Execution, error: dict[str, Any]) -> bool:
    """Cancel a run that waits: it ends at once (no worker holds it), keeping its state."""
    cancelled = Execution.objects.filter(pk=execution.pk, status=Status.WAITING).update(
        status=Status.CANCELLED, cancel_requested=True, finished_at=timezone.now(), error=error
    )
    if cancelled:
        _ended(execution, Status.CANCELLED, error)
    return bool(cancelled)


def _ended(execution: Execution, status: str, error: dict[str, Any]) -> None:
    seconds = execution.execution_time or 0.0
    ExecutionEvent.objects.create(
        execution=execution,
        kind="end",
        data={
            "status": status,
            "error": error,
            "tokens_used": execution.tokens_used,
            "cost": float(execution.cost),
            "execution_time": seconds,
        },
    )
    metrics.execution_ended(execution, status, execution.final_state, seconds)
    log_ended(execution, status, seconds, error)
    webhooks_wake([execution.pk])
