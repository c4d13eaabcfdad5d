"""Writes on schedules: create, change, delete, and fire the ticks that are due.

A tick fires at most once, whoever asks and however often: the sweep takes each due schedule's
row with `SELECT … FOR UPDATE SKIP LOCKED` (a second sweep running at the same time skips it),
moves its `next_run_at` past `now` in the same transaction, and records the tick in
`ScheduleTick`, whose unique (schedule, tick) pair refuses a second row for it. Ticks missed while
no sweep ran (no `qcluster` up) collapse into one: the latest tick at or before `now` fires, once.
"""

from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.services import execution_start
from schedules import cron
from schedules.models import Schedule, ScheduleTick
from tenants.models import Tenant
from tenants.services import audit_record
from workflows.models import Workflow
from workflows.services import WorkflowInvalid

logger = structlog.get_logger(__name__)

SWEEP_BATCH = 500
"""Due schedules one sweep fires at most (the next sweep takes the rest)."""
TICKS_KEPT = timedelta(days=30)
"""How long a fired tick's row is kept (the schedule's `next_run_at` already guards older ones)."""


class ScheduleRefused(Exception):
    """A schedule's field AgentFlow will not take; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class TooManySchedules(Exception):
    """The tenant has as many schedules as AGENTFLOW_SCHEDULE_MAX_PER_TENANT allows."""


def _check_timing(expression: str, zone_name: str) -> None:
    """Raises ScheduleRefused for a time zone or cron expression that will not do."""
    try:
        cron.zone(zone_name)
    except cron.BadCron as exc:
        raise ScheduleRefused("timezone", str(exc)) from None
    try:
        minimum = settings.AGENTFLOW_SCHEDULE_MIN_INTERVAL_SECONDS
        cron.check(expression, zone_name, min_interval=minimum)
    except cron.BadCron as exc:
        raise ScheduleRefused("cron", str(exc)) from None


def _check_version(workflow: Workflow, version: int | None) -> None:
    if version is not None and not workflow.versions.filter(version=version).exists():
        raise ScheduleRefused(
            "version", f"Workflow {workflow.id} has versions 1 to {workflow.version}."
        )


def _next_run(schedule: Schedule, now: datetime) -> datetime | None:
    return None if schedule.paused else cron.next_tick(schedule.cron, schedule.timezone, now)


@transaction.atomic
def schedule_create(
    *,
    workflow: Workflow,
    fields: dict[str, Any],
    actor: str,
    idempotency_key: str = "",
    request_hash: str = "",
    now: datetime | None = None,
) -> Schedule:
    """Store a schedule of `workflow` (`fields`: cron, timezone, initial_state, version, paused).

    Raises:
        ScheduleRefused: a field will not do (its name in `field`).
        TooManySchedules: the tenant is at its limit.
    """
    _check_timing(fields["cron"], fields.get("timezone", "UTC"))
    _check_version(workflow, fields.get("version"))
    tenant = Tenant.objects.select_for_update().filter(pk=workflow.tenant_id)
    list(tenant.values_list("pk", flat=True))  # its row locked: one count at a time
    limit = settings.AGENTFLOW_SCHEDULE_MAX_PER_TENANT
    if Schedule.objects.filter(tenant_id=workflow.tenant_id).count() >= limit:
        raise TooManySchedules(
            f"The tenant has {limit} schedules, the most AGENTFLOW_SCHEDULE_MAX_PER_TENANT "
            "allows; delete one first."
        )
    schedule = Schedule(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        created_by=actor[:64],
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        **fields,
    )
    schedule.next_run_at = _next_run(schedule, now or timezone.now())
    schedule.save()
    _audit(schedule, actor, "schedule.create", fields)
    return schedule


@transaction.atomic
def schedule_update(
    *, schedule: Schedule, changes: dict[str, Any], actor: str, now: datetime | None = None
) -> Schedule:
    """Apply `changes`; a new cron, time zone or a resume counts the next tick from now (ticks
    missed while paused are not run).

    Raises:
        ScheduleRefused: a field will not do (its name in `field`).
    """
    locked = Schedule.objects.select_for_update().select_related("workflow").get(pk=schedule.pk)
    for name, value in changes.items():
        setattr(locked, name, value)
    if {"cron", "timezone"} & changes.keys():  # what stands was checked when it was set
        _check_timing(locked.cron, locked.timezone)
    if "version" in changes:
        _check_version(locked.workflow, locked.version)
    if {"cron", "timezone", "paused"} & changes.keys():
        locked.next_run_at = _next_run(locked, now or timezone.now())
    locked.save()
    _audit(locked, actor, "schedule.update", changes)
    return locked


@transaction.atomic
def schedule_delete(*, schedule: Schedule, actor: str) -> None:
    _audit(schedule, actor, "schedule.delete", {})
    schedule.delete()


def _audit(schedule: Schedule, actor: str, action: str, fields: dict[str, Any]) -> None:
    shown = {k: v for k, v in fields.items() if k != "initial_state"}  # a tenant's data
    audit_record(
        tenant=schedule.tenant,
        actor=actor,
        action=action,
        target_type="schedule",
        target_id=schedule.id,
        details={"workflow": schedule.workflow_id, **shown},
    )


# --- firing -------------------------------------------------------------------------------------


def schedules_fire_due(*, now: datetime | None = None) -> list[str]:
    """Fire every schedule whose tick has come (once each, whatever else fires them at the same
    time); the ids of the executions queued."""
    now = now or timezone.now()
    due = list(Schedule.objects.due(now).values_list("pk", flat=True)[:SWEEP_BATCH])
    queued = [found for pk in due if (found := schedule_fire(schedule_id=pk, now=now))]
    ScheduleTick.objects.filter(tick__lt=now - TICKS_KEPT).delete()
    return queued


def schedule_fire(*, schedule_id: str, now: datetime) -> str | None:
    """Queue one run for the schedule's latest tick at or before `now`, if it is due and not
    fired yet; the execution's id, or None (not due, taken by another sweep, or its workflow no
    longer runs: `last_error` says why)."""
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("workflow", "workflow__tenant")
            .due(now)
            .filter(pk=schedule_id)
            .first()
        )
        if schedule is None:
            return None
        tick = cron.latest_tick(schedule.cron, schedule.timezone, now)
        schedule.last_run_at, schedule.next_run_at = (
            tick,
            cron.next_tick(schedule.cron, schedule.timezone, now),
        )
        try:
            with transaction.atomic():
                fired = ScheduleTick.objects.create(schedule=schedule, tick=tick)
        except IntegrityError:  # fired already: only move the schedule on
            schedule.save(update_fields=["last_run_at", "next_run_at"])
            return None
        fired.execution_id, fired.error = _start(schedule)
        fired.save(update_fields=["execution_id", "error"])
        schedule.last_execution_id, schedule.last_error = fired.execution_id, fired.error
        schedule.save(
            update_fields=["last_run_at", "next_run_at", "last_execution_id", "last_error"]
        )
    logger.info(
        "schedule_fired",
        schedule_id=schedule.id,
        tick=tick.isoformat(),
        execution_id=fired.execution_id or None,
        error=(fired.error or {}).get("code"),
    )
    return fired.execution_id or None


def _start(schedule: Schedule) -> tuple[str, dict[str, Any] | None]:
    workflow = schedule.workflow
    try:
        with transaction.atomic():
            execution = execution_start(
                workflow=workflow,
                version=schedule.version or workflow.version,
                initial_state=schedule.initial_state,
                background=True,
                created_by=f"schedule:{schedule.id}",
            )
    except WorkflowInvalid as exc:
        first = exc.result.errors[0].message if exc.result.errors else ""
        return "", {"code": "invalid_workflow", "message": f"The workflow is not valid: {first}"}
    except ObjectDoesNotExist:
        message = f"Workflow {workflow.id} (version {schedule.version}) no longer exists."
        return "", {"code": "not_found", "message": message}
    return execution.id, None
