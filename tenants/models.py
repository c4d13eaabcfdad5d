"""Tenants own everything; API keys belong to one tenant and carry one role."""

from typing import ClassVar, Self

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from runtime.egress.trust import entry_problem


class Role(models.TextChoices):
    """Roles from SPEC §6, weakest first; a stronger role may do all a weaker one may."""

    VIEWER = "viewer", "viewer: read"
    EXECUTOR = "executor", "executor: execute and read"
    DEVELOPER = "developer", "developer: create and edit workflows and sources, execute"
    ADMIN = "admin", "admin: everything, keys included"

    @classmethod
    def rank(cls, role: str) -> int:
        return list(cls.values).index(role) if role in cls.values else -1


class TenantScopedQuerySet[M: models.Model](models.QuerySet[M]):
    """Every tenant-owned model's queries start here: `Model.objects.for_tenant(t)`."""

    def for_tenant(self, tenant: "Tenant") -> Self:
        return self.filter(tenant=tenant)


class SoftDeletedQuerySet[M: models.Model](TenantScopedQuerySet[M]):
    """For models deleted softly (`deleted_at`): `alive()` leaves the deleted ones out."""

    def alive(self) -> Self:
        return self.filter(deleted_at__isnull=True)


def validate_trusted_hosts(value: object) -> None:
    """Each entry a trusted-hosts entry (runtime/egress/trust.py): `host`, `host:port`, an IP or
    a CIDR range."""
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise ValidationError('Give a list of host entries, e.g. ["10.0.0.5:8000"].')
    for entry in value:
        problem = entry_problem(entry)
        if problem:
            raise ValidationError(problem)


class TenantQuerySet(models.QuerySet["Tenant"]):
    def active(self) -> "TenantQuerySet":
        return self.filter(is_active=True)


class Tenant(models.Model):
    slug = models.SlugField(max_length=63, unique=True, help_text="Short, stable name: 'acme'.")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    allowed_env = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "Environment variables this tenant's sources may name, exact or as a prefix "
            "ending in '*' (AGENTFLOW_T_ACME_*). Added to the operator-wide "
            "AGENTFLOW_ALLOWED_ENV."
        ),
    )
    trusted_hosts = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_trusted_hosts],
        help_text=(
            "Private or loopback hosts this tenant's sources (http and provider) may reach, added "
            "to the operator-wide AGENTFLOW_TRUSTED_HOSTS: 'host' (any port) or 'host:port'; a "
            "name ('*.corp' for a domain), an IP or a CIDR range ('[fd12::5]:8000' for IPv6). A "
            "source's allowed_hosts can only narrow this; cloud metadata stays unreachable."
        ),
    )
    daily_token_budget = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="tokens per UTC day across all runs; empty: no limit"
    )
    daily_cost_budget = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="USD per UTC day across all runs; empty: no limit",
    )
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="days ended runs (traces, events, files, checkpoints) are kept; 0: for ever; "
        "empty: AGENTFLOW_RETENTION_DAYS",
    )
    audit_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="days audit events are kept; 0: for ever; empty: AGENTFLOW_AUDIT_RETENTION_DAYS",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[TenantQuerySet] = TenantQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ("slug",)

    def __str__(self) -> str:
        return self.slug


class ApiKeyManager(BaseAPIKeyManager):
    def for_tenant(self, tenant: Tenant) -> models.QuerySet["ApiKey"]:
        return self.filter(tenant=tenant)  # type: ignore[return-value]


class ApiKey(AbstractAPIKey):
    """A hashed, prefixed key: shown once at creation; can expire and be revoked.

    The public handle of a key is its `prefix` (the primary key embeds the hash).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    rate_limit = models.CharField(
        max_length=32,
        blank=True,
        help_text="requests this key may make, e.g. '120/min'; empty: API_THROTTLE_RATE",
    )

    objects = ApiKeyManager()  # type: ignore[assignment,misc]

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        indexes = (models.Index(fields=("tenant", "revoked")),)


class StaffMembership(models.Model):
    """A staff user acts for a tenant, with a role: the admin shows them that tenant's rows, and
    their signed-in session may call the API as that tenant (tenants/staff.py). Superusers act
    for every tenant in the admin; the API still needs a membership to know which tenant."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(
        max_length=16,
        choices=Role.choices,
        default=Role.VIEWER,
        help_text="what this user's session may do through the API, as an API key's role",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("tenant__slug", "user_id")
        constraints = (
            models.UniqueConstraint(fields=("user", "tenant"), name="one_membership_per_tenant"),
        )

    def __str__(self) -> str:
        return f"{self.user} acts for {self.tenant} ({self.role})"


class AuditEvent(models.Model):
    """Who did what, append-only: rows are created, never changed or deleted through the app."""

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=64, blank=True, help_text="API key prefix or user")
    action = models.CharField(max_length=64, help_text="e.g. workflow.create, auth.failed")
    target_type = models.CharField(max_length=32, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ("-at", "-id")
        indexes = (
            models.Index(fields=("tenant", "-at")),
            models.Index(fields=("tenant", "action")),
        )

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit events are append-only.")
