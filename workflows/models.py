"""Stored workflows: the current spec and every saved version."""

import secrets
from typing import ClassVar

from django.db import models

from tenants.models import SoftDeletedQuerySet, Tenant


def new_workflow_id() -> str:
    return "wf_" + secrets.token_hex(10)


class WorkflowQuerySet(SoftDeletedQuerySet["Workflow"]):
    pass


class Workflow(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        DELETED = "deleted"

    id = models.CharField(primary_key=True, max_length=40, default=new_workflow_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=200, help_text="the spec's name")
    description = models.TextField(blank=True)
    spec = models.JSONField(help_text="the current version's spec")
    version = models.PositiveIntegerField(default=1, help_text="the current version")
    node_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=64, blank=True)
    updated_by = models.CharField(max_length=64, blank=True)
    deleted_by = models.CharField(max_length=64, blank=True)

    objects: ClassVar[WorkflowQuerySet] = WorkflowQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("tenant", "deleted_at", "-created_at")),)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class WorkflowVersion(models.Model):
    """A saved spec, never changed afterwards: executions may pin it."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    spec = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ("-version",)
        constraints = (
            models.UniqueConstraint(fields=("workflow", "version"), name="one_row_per_version"),
        )

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.version}"
