"""Writes on tenants and keys. Keyword-only, typed, one transaction each."""

import ipaddress
from datetime import datetime
from decimal import Decimal

import structlog
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from runtime.grants import GrantError, parse_grant
from tenants.models import ApiKey, AuditEvent, Role, Tenant


class TenantError(ValueError):
    """A request about tenants or keys that cannot be carried out; the message says why."""


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", allowed_env: list[str] | None = None) -> Tenant:
    clean = slugify(slug)
    if not clean or clean != slug:
        raise TenantError(
            f"Tenant slug {slug!r} must be lowercase letters, digits and hyphens (try {clean!r})."
            if clean
            else f"Tenant slug {slug!r} is empty."
        )
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantError(f"A tenant named {slug!r} already exists.")
    for entry in allowed_env or []:
        try:
            parse_grant(entry)
        except GrantError as exc:
            raise TenantError(str(exc)) from None
    return Tenant.objects.create(slug=slug, name=name or slug, allowed_env=allowed_env or [])


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    role: str,
    name: str = "",
    expires_at: datetime | None = None,
    rate_limit: str = "",
    actor: str = "cli",
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is shown this once and never again."""
    if role not in Role.values:
        raise TenantError(f"Role {role!r} is not one of: {', '.join(Role.values)}.")
    if expires_at is not None and expires_at <= timezone.now():
        raise TenantError(f"The expiry {expires_at.isoformat()} is in the past.")
    api_key, secret = ApiKey.objects.create_key(
        tenant=tenant,
        role=role,
        name=(name or f"{role} key")[:50],
        expiry_date=expires_at,
        rate_limit=rate_limit,
    )
    assert isinstance(api_key, ApiKey)
    audit_record(
        tenant=tenant,
        actor=actor,
        action="key.create",
        target_type="key",
        target_id=api_key.prefix,
        details={"role": role},
    )
    return api_key, secret


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: str = "cli") -> ApiKey:
    """Revoke a key for good (revocation cannot be undone)."""
    if not api_key.revoked:
        api_key.revoked = True
        api_key.save(update_fields=["revoked"])
        audit_record(
            tenant=api_key.tenant,
            actor=actor,
            action="key.revoke",
            target_type="key",
            target_id=api_key.prefix,
        )
    return api_key


def audit_record(
    *,
    tenant: Tenant | None,
    actor: str,
    action: str,
    target_type: str = "",
    target_id: str = "",
    details: dict[str, object] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one audit event. The request id, and the client's address when `ip` is not
    given, are taken from the logging context (django-structlog binds both per request)."""
    bound = structlog.contextvars.get_contextvars()
    request_id = str(bound.get("request_id") or "")
    ip = ip or _address(bound.get("ip"))
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=actor[:64],
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
        ip=ip,
        request_id=request_id[:64],
    )


def _address(value: object) -> str | None:
    """A client address fit for the audit's GenericIPAddressField, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


@transaction.atomic
def tenant_set_budget(
    *, tenant: Tenant, daily_tokens: int | None, daily_cost: Decimal | None, actor: str
) -> Tenant:
    tenant.daily_token_budget = daily_tokens
    tenant.daily_cost_budget = daily_cost
    tenant.save(update_fields=["daily_token_budget", "daily_cost_budget", "updated_at"])
    audit_record(
        tenant=tenant,
        actor=actor,
        action="budget.update",
        target_type="tenant",
        target_id=tenant.slug,
        details={
            "daily_tokens": daily_tokens,
            "daily_cost": None if daily_cost is None else str(daily_cost),
        },
    )
    return tenant
