"""Cron schedules of stored workflows, and the ticks they fired (one row per tick, ever)."""

import secrets
from datetime import datetime
from typing import ClassVar, Self

from django.db import models

from tenants.models import Tenant, TenantScopedQuerySet


def new_schedule_id() -> str:
    return "sch_" + secrets.token_hex(10)


class ScheduleQuerySet(TenantScopedQuerySet["Schedule"]):
    def due(self, now: datetime) -> Self:
        """Running schedules whose next tick has come, of workflows not deleted."""
        return self.filter(
            paused=False, next_run_at__lte=now, workflow__deleted_at__isnull=True
        ).order_by("next_run_at")


class Schedule(models.Model):
    """Queue a run of `workflow` with `initial_state` at each tick of `cron` in `timezone`."""

    id = models.CharField(primary_key=True, max_length=40, default=new_schedule_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    workflow = models.ForeignKey(
        "workflows.Workflow", on_delete=models.CASCADE, related_name="schedules"
    )
    cron = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC")
    initial_state = models.JSONField(default=dict)
    version = models.PositiveIntegerField(
        null=True, blank=True, help_text="the version each run pins; none: the current one"
    )
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="the next tick (UTC)")
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="the last tick fired")
    last_execution_id = models.CharField(max_length=40, blank=True)
    last_error = models.JSONField(null=True, blank=True, help_text="why the last tick ran nothing")
    idempotency_key = models.CharField(max_length=255, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    created_by = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[ScheduleQuerySet] = ScheduleQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ("created_at", "id")
        indexes = (
            models.Index(fields=("paused", "next_run_at")),  # the sweep's query
            models.Index(fields=("workflow", "created_at")),
        )
        constraints = (
            models.UniqueConstraint(
                fields=("tenant", "idempotency_key"),
                condition=~models.Q(idempotency_key=""),
                name="one_schedule_per_idempotency_key",
            ),
        )

    def __str__(self) -> str:
        return f"{self.id} ({self.cron} {self.timezone})"


class ScheduleTick(models.Model):
    """A tick a schedule fired: the unique pair makes a second firing of it impossible."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="ticks")
    tick = models.DateTimeField()
    execution_id = models.CharField(max_length=40, blank=True)
    error = models.JSONField(null=True, blank=True)
    fired_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-tick",)
        indexes = (models.Index(fields=("tick",)),)  # the sweep's pruning of old ticks
        constraints = (
            models.UniqueConstraint(fields=("schedule", "tick"), name="one_run_per_schedule_tick"),
        )

    def __str__(self) -> str:
        return f"{self.schedule_id}@{self.tick:%Y-%m-%d %H:%M}"
