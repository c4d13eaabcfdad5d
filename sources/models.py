"""Sources stored once per tenant and referenced from specs by id or name."""

import secrets
from typing import ClassVar

from django.db import models

from tenants.models import SoftDeletedQuerySet, Tenant


def new_source_id() -> str:
    return "src_" + secrets.token_hex(10)


class SourceQuerySet(SoftDeletedQuerySet["Source"]):
    pass


class Source(models.Model):
    """A config names environment variables for its credentials, never holds them."""

    id = models.CharField(primary_key=True, max_length=40, default=new_source_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=128, help_text="what specs call it, e.g. 'gpt'")
    kind = models.CharField(max_length=32)
    config = models.JSONField(default=dict)
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=64, blank=True)
    updated_by = models.CharField(max_length=64, blank=True)
    deleted_by = models.CharField(max_length=64, blank=True)

    objects: ClassVar[SourceQuerySet] = SourceQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ("name",)
        constraints = (
            models.UniqueConstraint(
                fields=("tenant", "name"),
                condition=models.Q(deleted_at__isnull=True),
                name="one_live_source_per_name",
            ),
        )

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class SourceVersion(models.Model):
    """Each saved config of a source, with who saved it and when."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=32)
    config = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ("-version",)
        constraints = (
            models.UniqueConstraint(
                fields=("source", "version"), name="one_row_per_source_version"
            ),
        )

    def __str__(self) -> str:
        return f"{self.source_id} v{self.version}"
