"""Reads about tenants."""

import structlog
from django.conf import settings

from runtime.grants import Grant, GrantError, Grants, parse_grant
from tenants.models import Tenant

logger = structlog.get_logger(__name__)


def tenant_grants(tenant: Tenant | None) -> Grants:
    """The variables a tenant's sources may name and where each may be sent: the operator-wide
    grants (AGENTFLOW_ALLOWED_ENV) plus the tenant's own `allowed_env` (runtime/grants.py).

    A tenant entry that does not parse grants nothing (and is logged); the operator's were
    checked at start. The platform's own variables stay refused by the validator regardless.
    """
    entries = [*settings.AGENTFLOW_ALLOWED_ENV, *(tenant.allowed_env if tenant else [])]
    grants = [grant for entry in entries if (grant := _grant(entry, tenant)) is not None]
    return Grants(tuple(grants), settings.AGENTFLOW_PROVIDER_BASE_URLS)


def _grant(entry: object, tenant: Tenant | None) -> Grant | None:
    try:
        return parse_grant(entry)
    except GrantError as exc:
        logger.warning("grant_ignored", tenant=tenant.slug if tenant else None, reason=str(exc))
        return None
