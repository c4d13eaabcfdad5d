"""Executions and their per-node trace (SPEC §5)."""

import secrets
from typing import ClassVar

from django.db import models

from tenants.models import Tenant, TenantScopedQuerySet


def new_execution_id() -> str:
    return "exec_" + secrets.token_hex(12)


class Status(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    WAITING = "waiting"  # on a person's answer (an approval node): no worker holds it


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED)


class ExecutionQuerySet(TenantScopedQuerySet["Execution"]):
    pass


class Execution(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_execution_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="executions")
    workflow = models.ForeignKey(
        "workflows.Workflow",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="executions",
    )
    workflow_version = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    mode = models.CharField(max_length=8, default="sync")
    spec = models.JSONField(help_text="the spec this run executed, as it was")
    spec_digest = models.CharField(max_length=64)
    workflow_name = models.CharField(max_length=200)
    initial_state = models.JSONField(default=dict)
    final_state = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text="{code, message, node_id}")
    tokens_used = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    timeout_seconds = models.FloatField(null=True, blank=True)
    created_by = models.CharField(max_length=64, blank=True, help_text="key:<prefix>")
    idempotency_key = models.CharField(max_length=255, blank=True)
    request_hash = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=128, blank=True, help_text="who is running it")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=0, help_text="times a worker took it up")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    execution_time = models.FloatField(null=True, blank=True, help_text="seconds")
    trace_context = models.CharField(
        max_length=512,
        blank=True,
        help_text="W3C traceparent (and tracestate) of the request that queued it, if traced",
    )
    waiting_for = models.JSONField(
        null=True,
        blank=True,
        help_text="{node_id, question, options, expires_at, on_expiry, interrupt_id}: what the "
        "run waits on, or last waited on",
    )
    wait_expires_at = models.DateTimeField(null=True, blank=True)
    answer = models.JSONField(
        null=True,
        blank=True,
        help_text="{interrupt_id, answer, comment, by, at}: the last answer, given to the run "
        "when a worker takes it up",
    )

    replay_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replays",
        help_text="the run this one replays, its provider calls answered from its record",
    )
    replay_from_node = models.CharField(
        max_length=64, blank=True, help_text="a replay: the node from which it ran afresh"
    )

    objects: ClassVar[ExecutionQuerySet] = ExecutionQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ("-created_at",)
        indexes = (
            models.Index(fields=("tenant", "-created_at")),
            models.Index(fields=("workflow", "-created_at")),
            models.Index(fields=("tenant", "status")),
            models.Index(fields=("status", "heartbeat_at")),
            models.Index(fields=("status", "created_at")),  # the workers' queue
        )
        constraints = (
            models.UniqueConstraint(
                fields=("tenant", "idempotency_key"),
                condition=~models.Q(idempotency_key=""),
                name="one_execution_per_idempotency_key",
            ),
        )

    def __str__(self) -> str:
        return self.id

    def file_path(self, name: str) -> str:
        """Where a file this run produced is kept in storage (under its tenant and run)."""
        return f"executions/{self.tenant_id}/{self.id}/{name}"


class NodeRun(models.Model):
    """One attempt of one node: a retried node has a row per attempt."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="node_runs")
    node_id = models.CharField(max_length=64)
    node_type = models.CharField(max_length=128)
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, default=Status.RUNNING)
    started_at = models.DateTimeField()
    duration = models.FloatField(null=True, blank=True, help_text="seconds")
    output = models.JSONField(null=True, blank=True)
    tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    error = models.JSONField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("started_at", "id")
        indexes = (models.Index(fields=("execution", "node_id", "attempt")),)

    def __str__(self) -> str:
        return f"{self.execution_id}:{self.node_id}#{self.attempt}"


class ProviderRecording(models.Model):
    """One provider call a run made, keyed by its request's digest (runtime.replay): what a
    replay of the run answers the same request with. Not part of the trace API."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="recordings")
    node_id = models.CharField(max_length=64)
    digest = models.CharField(max_length=64, help_text="sha256 of the canonical request")
    kind = models.CharField(max_length=16, default="chat")
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.execution_id}:{self.node_id} {self.kind}"


class ExecutionEvent(models.Model):
    """What a client following a run sees (server-sent events); `id` is the event id."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, help_text="node_started, node_finished, token, end")
    data = models.JSONField(default=dict)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)
        indexes = (models.Index(fields=("execution", "id")),)

    def __str__(self) -> str:
        return f"{self.execution_id}#{self.pk} {self.kind}"


class DailyUsage(models.Model):
    """A tenant's count against its daily budget when there is no Redis: what its provider
    calls used on one UTC day plus what calls in flight have reserved (runtime/budget.py)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=18, decimal_places=8, default=0)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("tenant", "day"), name="one_daily_usage_per_day"),
        )

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.day}"


class ExecutionProfile(models.Model):
    """A profile an operator asked for of one run (pyinstrument's HTML), staff-only."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="profiles")
    created_at = models.DateTimeField(auto_now_add=True)
    duration = models.FloatField(default=0, help_text="seconds profiled")
    html = models.TextField()

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.execution_id} profile {self.created_at:%Y-%m-%d %H:%M:%S}"


class Worker(models.Model):
    """A run worker process (`manage.py runworker`) as it last reported itself: `/health`
    counts those that beat recently."""

    name = models.CharField(primary_key=True, max_length=128, help_text="host:pid")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    capacity = models.PositiveIntegerField(help_text="runs it may drive at once")
    running = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """The POST of a run's outcome to the `callback_url` its execute request named: due once
    the run has ended, retried with backoff (executions/webhooks.py)."""

    class State(models.TextChoices):
        PENDING = "pending"  # the run has not ended, or an attempt is due
        DELIVERED = "delivered"
        FAILED = "failed"  # out of attempts, or the URL was refused

    execution = models.OneToOneField(
        Execution, on_delete=models.CASCADE, primary_key=True, related_name="webhook"
    )
    url = models.CharField(max_length=2048)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="none: as soon as the run ends"
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="the receiver's HTTP status"
    )
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = (models.Index(fields=("state", "next_attempt_at")),)  # the sweep's query

    def __str__(self) -> str:
        return f"{self.execution_id} webhook ({self.state})"


class WebhookSecret(models.Model):
    """The key a tenant's webhooks are signed with (HMAC-SHA256); made on first use."""

    tenant = models.OneToOneField(
        Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    secret = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"webhook secret of tenant {self.tenant_id}"
