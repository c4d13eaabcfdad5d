"""Writes on executions: create one, run it, record its trace."""

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable
from datetime import date, timedelta
from functools import partial
from typing import Any

import structlog
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import DecimalField, F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from agentflow_site.observability import errors as error_tracking
from agentflow_site.observability import metrics
from agentflow_site.observability.errors import INTERNAL_RUN_ERRORS
from agentflow_site.observability.profiling import Profile, profile_wanted, profiled
from agentflow_site.runtime_config import daily_budget, run_context
from executions.approvals import execution_cancel_waiting
from executions.checkpoints import checkpointer
from executions.lifecycle import log_ended, log_queued, log_started, run_labels
from executions.models import (
    DailyUsage,
    Execution,
    ExecutionEvent,
    ExecutionProfile,
    NodeRun,
    Status,
)
from executions.recorded_calls import execution_recordings
from executions.recording import TraceWriter, money
from executions.runner import Around, CallerThread, Event, run_observed
from executions.selectors import budget_limits
from executions.wakeup import notify_workers
from executions.webhooks import webhooks_wake
from runtime import telemetry
from runtime.budget import Budget, DailyLimits, LimitName, Spend
from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.runner import RunOutcome
from runtime.validation import ValidationResult
from tenants.models import Tenant
from tenants.selectors import tenant_grants
from tenants.services import audit_record
from workflows.models import Workflow
from workflows.services import WorkflowInvalid, workflow_validate

logger = structlog.get_logger(__name__)

IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@transaction.atomic
def execution_create(
    *,
    tenant: Tenant,
    validated: ValidationResult,
    initial_state: dict[str, Any],
    mode: str = "sync",
    timeout_seconds: float | None = None,
    created_by: str = "",
    workflow: Workflow | None = None,
    workflow_version: int | None = None,
    idempotency_key: str = "",
    request_hash: str = "",
    claim: bool = False,
    replay_of: Execution | None = None,
    replay_from_node: str = "",
) -> Execution:
    """`claim`: the caller runs it at once (a sync execute): it is created running, held by
    this process, which saves the claim's own commit. `replay_of`: the run whose recorded
    provider calls answer this one's (executions.replay)."""
    assert validated.spec is not None
    now = timezone.now()
    held = (
        {"status": Status.RUNNING, "worker": worker_name(), "heartbeat_at": now}
        | {"started_at": now, "deliveries": 1}
        if claim
        else {}
    )
    spec = validated.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    execution = Execution.objects.create(
        tenant=tenant,
        workflow=workflow,
        workflow_version=workflow_version,
        mode=mode,
        spec=spec,
        spec_digest="",
        workflow_name=validated.spec.name,
        initial_state=initial_state,
        timeout_seconds=timeout_seconds,
        created_by=created_by,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        trace_context=telemetry.current_carrier(),  # the worker's spans continue this trace
        replay_of=replay_of,
        replay_from_node=replay_from_node,
        **held,
    )
    details: dict[str, object] = {
        "workflow": workflow.id if workflow else None,
        "version": workflow_version,
        "mode": mode,
    }
    if replay_of is not None:
        details |= {"replay_of": replay_of.pk, "from_node": replay_from_node or None}
    audit_record(
        tenant=tenant,
        actor=created_by,
        action="execution.replay" if replay_of else "execution.create",
        target_type="execution",
        target_id=execution.id,
        details=details,
    )
    metrics.execution_started(execution)
    if not claim:
        log_queued(execution)
    return execution


def _image_store(execution: Execution) -> Any:
    async def store(data: bytes, mime_type: str) -> str:
        name = f"{secrets.token_hex(8)}.{IMAGE_EXTENSIONS.get(mime_type, 'bin')}"
        path = execution.file_path(name)
        await asyncio.to_thread(default_storage.save, path, ContentFile(data))
        return f"/api/v1/executions/{execution.id}/files/{name}"

    return store


HEARTBEAT_EVERY = timedelta(seconds=2)


def execution_context(
    execution: Execution, caller: CallerThread, writer: TraceWriter
) -> RunContext:
    """The RunContext of an execution: its tenant's grants, trusted hosts, daily budget (whose
    database writes `caller` does), image store, and the recordings of its provider calls
    (written by `writer`, with its trace)."""
    ctx = run_context(
        store_image=_image_store(execution),
        tenant=f"t{execution.tenant_id}",
        budget=_daily_budget(execution.tenant, caller),
        grants=tenant_grants(execution.tenant),
        trusted_hosts=execution.tenant.trusted_hosts,
    )
    ctx.labels, ctx.trace_parent = run_labels(execution), execution.trace_context
    ctx.recordings = execution_recordings(execution, writer)
    return ctx


def stale_runs() -> Any:
    """Running executions whose worker (or web process) stopped beating their heart."""
    return Execution.objects.filter(
        status=Status.RUNNING, heartbeat_at__lt=timezone.now() - heartbeat_stale()
    )


def heartbeat_stale() -> timedelta:
    """A running execution whose heartbeat is older than this has lost its worker."""
    return timedelta(seconds=settings.AGENTFLOW_HEARTBEAT_STALE)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(execution_id: str, worker: str, **fields: Any) -> bool:
    """Take the run: a queued one, or a running one whose worker stopped beating (a redelivery
    after a crash). The conditional update makes a second delivery do nothing."""
    now = timezone.now()
    taken = {"heartbeat_at": now, "worker": worker, "deliveries": F("deliveries") + 1, **fields}
    queued = Execution.objects.filter(pk=execution_id, status=Status.QUEUED, cancel_requested=False)
    if queued.update(status=Status.RUNNING, started_at=now, **taken):
        return True
    stale = Execution.objects.filter(
        pk=execution_id, status=Status.RUNNING, heartbeat_at__lt=now - heartbeat_stale()
    )
    cancelled = {"code": "cancelled", "message": "Cancelled while its worker was lost."}
    if stale.filter(cancel_requested=True).update(
        status=Status.CANCELLED, error=cancelled, finished_at=now
    ):  # asked to stop, then lost its worker: end it rather than resume it
        ExecutionEvent.objects.create(
            execution_id=execution_id,
            kind="end",
            data={"status": Status.CANCELLED, "error": cancelled},
        )
        webhooks_wake([execution_id])
        return False
    if stale.update(**taken):
        # Attempts the dead worker left open never finished; the resumed run records its own.
        NodeRun.objects.filter(execution_id=execution_id, status=Status.RUNNING).update(
            status=Status.FAILED,
            error={"code": "worker_lost", "message": "The worker running this node stopped."},
        )
        return True
    return False


def execution_run(
    *,
    execution_id: str,
    validated: ValidationResult,
    durable: bool = False,
    claimed: bool = False,
    profile: bool = False,
) -> Execution:
    """Run a queued execution to the end, recording each node attempt as it happens.

    A second call for the same execution does nothing: the run is claimed with a conditional
    update, so only one caller (web process or worker) ever runs it. `durable` checkpoints
    every step, so a run taken over after a crash resumes where it was. `claimed`: the caller
    created it held by this process (`execution_create(claim=True)`). `profile`: keep a profile
    of the run beside it (as AGENTFLOW_PROFILE_EXECUTIONS does for the workflows it names).
    """
    worker = worker_name()
    execution = Execution.objects.select_related("tenant").get(pk=execution_id)
    workflow = compile_workflow(validated, state_keys=execution.initial_state.keys())
    if not claimed and not _claim(execution_id, worker):
        execution.refresh_from_db()
        return execution
    log_started(execution, worker=worker)
    recorder = _Recorder(execution, worker)
    caller = CallerThread()
    ctx = execution_context(execution, caller, recorder.writer)
    try:
        outcome = run_observed(
            workflow,
            execution.initial_state,
            ctx,
            timeout_seconds=_run_timeout(execution.timeout_seconds, background=durable),
            on_events=recorder.record,
            on_tick=recorder.tick,
            checkpointer=checkpointer if durable else None,
            thread_id=execution.id,
            caller=caller,
            around=execution_profiler(execution, caller, asked=profile),
        )
    except asyncio.CancelledError:  # cancelled before the run itself began (while it opened)
        recorder.flush()
        error = {"code": "cancelled", "message": "The run was cancelled.", "node_id": None}
        _finish(execution, Status.CANCELLED, None, error, 0, worker=worker)
        execution.refresh_from_db()
        return execution
    except Exception as exc:
        recorder.flush()
        message = ctx.redactor.text(f"{type(exc).__name__}: {exc}")
        internal = {"code": "internal_error", "message": message}
        _finish(execution, Status.FAILED, None, internal, 0, worker=worker)
        logger.exception("execution_crashed", execution_id=execution_id)  # the log is scrubbed
        # django-q2 stores a failed task's exception and traceback: only the redacted text.
        raise ExecutionCrashed(message) from None
    recorder.flush()
    _finish(
        execution,
        outcome.status,
        outcome.final_state,
        outcome.error,
        outcome.execution_time,
        worker=worker,
        spec_digest=workflow.digest,
    )
    execution.refresh_from_db()
    return execution


def execution_profiler(
    execution: Execution, caller: CallerThread, *, asked: bool = False
) -> Around | None:
    """What wraps the run to profile it and keep the profile beside the execution (written
    through `caller`, before the run's end), when the operator asked for one; else None."""
    if not profile_wanted(
        workflow_name=execution.workflow_name, workflow_id=execution.workflow_id, asked=asked
    ):
        return None

    async def around(work: Awaitable[RunOutcome]) -> RunOutcome:
        outcome, profile = await profiled(work, f"execution {execution.pk}")
        await caller.call(
            lambda: execution_profile_save(execution_id=execution.pk, profile=profile)
        )
        return outcome

    return around


def execution_profile_save(*, execution_id: str, profile: Profile) -> ExecutionProfile:
    return ExecutionProfile.objects.create(
        execution_id=execution_id, html=profile.html, duration=profile.duration
    )


TASK_MARGIN_S = 15


def _run_timeout(asked: float | None, *, background: bool) -> float | None:
    """A background run ends as timed_out (keeping its state) before django-q2's task timeout
    would kill its worker mid-run."""
    if not background:
        return asked
    ceiling = float(settings.Q_CLUSTER["timeout"]) - TASK_MARGIN_S
    return min(asked, ceiling) if asked else ceiling


def _finish(
    execution: Execution,
    status: str,
    final_state: dict[str, Any] | None,
    error: dict[str, Any] | None,
    execution_time: float,
    *,
    worker: str,
    **fields: Any,
) -> None:
    """End the run (fenced: see `ending`) and write its `end` event, in one commit."""
    with transaction.atomic():
        end = ending(
            execution.pk, status, final_state, error, execution_time, worker=worker, **fields
        )
        if end is not None:
            end.save()
            metrics.execution_ended(execution, status, final_state, execution_time)
            log_ended(execution, status, execution_time, error)
            webhooks_wake([execution.pk])


def ending(
    execution_id: str,
    status: str,
    final_state: dict[str, Any] | None,
    error: dict[str, Any] | None,
    execution_time: float,
    *,
    worker: str,
    **fields: Any,
) -> ExecutionEvent | None:
    """Write the run's end on its row, and give its `end` event to be saved (a worker saves the
    ends of many runs in one statement). Fenced: only the worker that holds the run may end it;
    one whose run was taken over (its heartbeat went stale) or ended by the reaper writes
    nothing and gets None."""
    state = final_state or {}
    tokens, cost = int(state.get("tokens_used") or 0), float(state.get("cost") or 0)
    mine = Execution.objects.filter(pk=execution_id, status=Status.RUNNING, worker=worker)
    if not mine.update(
        status=status,
        final_state=final_state,
        error=error,
        tokens_used=tokens,
        cost=money(cost),
        finished_at=timezone.now(),
        execution_time=execution_time,
        **fields,
    ):
        return None
    if status != Status.SUCCEEDED:  # a node the run's end interrupted ends with it
        interrupted = Status.FAILED if status == Status.FAILED else status
        NodeRun.objects.filter(execution_id=execution_id, status=Status.RUNNING).update(
            status=interrupted,
            error={"code": status, "message": f"The run ended ({status}) while this node ran."},
        )
        execution_failure_report(execution_id=execution_id, error=error)
    end = {
        "status": status,
        "error": error,
        "tokens_used": tokens,
        "cost": cost,
        "execution_time": execution_time,
    }
    return ExecutionEvent(execution_id=execution_id, kind="end", data=end)


def execution_failure_report(*, execution_id: str, error: dict[str, Any] | None) -> None:
    """Once the run's end commits, report it to error tracking if it failed through AgentFlow's
    fault (observability.errors.INTERNAL_RUN_ERRORS); a tenant's own failures are not."""
    if not error or error.get("code") not in INTERNAL_RUN_ERRORS or not error_tracking.enabled():
        return
    transaction.on_commit(partial(_report_failure, execution_id, dict(error)))


def _report_failure(execution_id: str, error: dict[str, Any]) -> None:
    found = Execution.objects.filter(pk=execution_id).values_list("tenant__slug", "workflow_id")
    tenant, workflow_id = found.first() or ("", None)
    error_tracking.report_run_failure(
        execution_id=execution_id, tenant=tenant, workflow_id=workflow_id, error=error
    )


class _Recorder:
    """Writes one run's trace and event stream in batches (`TraceWriter`), beats the heart, and
    tells the runner when a cancel was asked for."""

    def __init__(self, execution: Execution, worker: str) -> None:
        self.execution = execution
        self.worker = worker
        self.writer = TraceWriter()
        self.last_beat = timezone.now()

    def record(self, events: list[Event]) -> None:
        self.writer.write((self.execution.pk, event) for event in events)

    def tick(self) -> bool:
        self.flush()
        now = timezone.now()
        mine = Execution.objects.filter(pk=self.execution.pk, worker=self.worker)
        if now - self.last_beat >= HEARTBEAT_EVERY:
            self.last_beat = now
            if not mine.update(heartbeat_at=now):
                return True  # another worker took the run over: stop this one
        return Execution.objects.filter(pk=self.execution.pk, cancel_requested=True).exists()

    def flush(self) -> None:
        self.writer.flush_tokens()


class ExecutionCrashed(Exception):
    """A run broke outside anything the runtime reports as an outcome (a bug)."""


class ExecutionFinished(Exception):
    """A cancel of an execution that has already ended."""


def execution_cancel(*, execution: Execution, actor: str) -> Execution:
    """Cancel a queued run at once; ask a running one to stop (its worker stops it within half
    a second, keeping its partial state).

    Raises:
        ExecutionFinished: the run had already ended.
    """
    now = timezone.now()
    error = {"code": "cancelled", "message": f"Cancelled by {actor}.", "node_id": None}
    queued = Execution.objects.filter(pk=execution.pk, status=Status.QUEUED)
    if queued.update(status=Status.CANCELLED, cancel_requested=True, finished_at=now, error=error):
        ExecutionEvent.objects.create(
            execution=execution, kind="end", data={"status": Status.CANCELLED, "error": error}
        )
        metrics.execution_ended(execution, Status.CANCELLED, None, 0)
        log_ended(execution, Status.CANCELLED, 0, error)
        webhooks_wake([execution.pk])
    elif not (
        execution_cancel_waiting(execution=execution, error=error)
        or Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(
            cancel_requested=True
        )
        # it went from running to waiting meanwhile
        or execution_cancel_waiting(execution=execution, error=error)
    ):
        raise ExecutionFinished(f"Execution {execution.id} has already ended.")
    audit_record(
        tenant=execution.tenant,
        actor=actor,
        action="execution.cancel",
        target_type="execution",
        target_id=execution.id,
    )
    execution.refresh_from_db()
    return execution


# --- the daily budget's count in the database (no Redis) ---------------------------------------


def daily_usage_take(
    *, tenant_id: int, day: date, want: Spend, limits: DailyLimits
) -> LimitName | None:
    """Add `want` to the tenant's count for `day` (raised to the limits' floor first) if the
    count is under every limit; else name the limit reached.

    One conditional UPDATE, in no transaction: a concurrent one waits for the row's lock, then
    checks the limits again against what the first one wrote (PostgreSQL re-reads the row).
    The day's first take creates the row.
    """
    floor = limits.floor(day)
    reached = limits.reached(floor)
    if reached is not None:
        return reached
    row = DailyUsage.objects.filter(tenant_id=tenant_id, day=day)
    under = row
    if limits.tokens is not None:
        under = under.filter(tokens__lt=limits.tokens)
    if limits.cost is not None:
        under = under.filter(cost__lt=money(limits.cost))
    floor_cost = Value(
        money(floor.cost), output_field=DecimalField(max_digits=18, decimal_places=8)
    )
    add = {
        "tokens": Greatest("tokens", Value(floor.tokens)) + want.tokens,
        "cost": Greatest("cost", floor_cost) + money(want.cost),
    }
    if under.update(**add):
        return None
    if not row.exists():
        today = DailyUsage(tenant_id=tenant_id, day=day)
        DailyUsage.objects.bulk_create([today], ignore_conflicts=True)  # or another run did
        if under.update(**add):
            return None
    tokens, cost = row.values_list("tokens", "cost").get()
    # None only when a call gave back meanwhile: the refusal stands, it was made at the limit
    fallback: LimitName = "token" if limits.tokens is not None else "cost"
    return limits.reached(Spend(tokens, float(cost))) or fallback


def daily_usage_give(*, tenant_id: int, day: date, change: Spend) -> None:
    """Add `change` to the tenant's count for `day` (negative: give back a reservation)."""
    DailyUsage.objects.filter(tenant_id=tenant_id, day=day).update(
        tokens=F("tokens") + change.tokens, cost=F("cost") + money(change.cost)
    )


class DatabaseLedger:
    """runtime.budget's Ledger on `DailyUsage` rows, written by the run's caller thread."""

    def __init__(self, tenant_id: int, caller: CallerThread) -> None:
        self.tenant_id, self.caller = tenant_id, caller

    async def take(self, day: date, want: Spend, limits: DailyLimits) -> LimitName | None:
        return await self.caller.call(
            lambda: daily_usage_take(tenant_id=self.tenant_id, day=day, want=want, limits=limits)
        )

    async def give(self, day: date, change: Spend) -> None:
        await self.caller.call(
            lambda: daily_usage_give(tenant_id=self.tenant_id, day=day, change=change)
        )

    async def aclose(self) -> None:
        return None


def _daily_budget(tenant: Tenant, caller: CallerThread) -> Budget:
    database = DatabaseLedger(tenant.pk, caller)
    return daily_budget(budget_limits(tenant), tenant=f"t{tenant.pk}", database=database)


def execution_start(
    *,
    workflow: Workflow,
    version: int,
    initial_state: dict[str, Any],
    background: bool,
    created_by: str,
) -> Execution:
    """Run version `version` of a stored workflow as its tenant, as the API's execute does:
    queued for the workers when `background`, else run here to its end (a run that crashed is
    answered as its recorded failure). Raises WorkflowInvalid when that version no longer
    validates (a source or grant gone) and Workflow.DoesNotExist when the workflow was deleted.
    """
    saved = workflow.versions.get(version=version)
    validated = workflow_validate(spec=saved.spec, tenant=workflow.tenant)
    if not validated.valid:
        raise WorkflowInvalid(validated)
    with transaction.atomic():
        Workflow.objects.select_for_update().alive().get(pk=workflow.pk)  # as the API locks it
        execution = execution_create(
            tenant=workflow.tenant,
            validated=validated,
            mode="async" if background else "sync",
            initial_state=initial_state,
            timeout_seconds=None if background else float(settings.AGENTFLOW_SYNC_TIMEOUT),
            created_by=created_by[:64],
            workflow=workflow,
            workflow_version=version,
            claim=not background,
        )
        if background:
            notify_workers()  # what tasks.enqueue_run does; it imports this module
    if background:
        return execution
    try:
        return execution_run(execution_id=execution.id, validated=validated, claimed=True)
    except ExecutionCrashed:
        return Execution.objects.get(pk=execution.id)
