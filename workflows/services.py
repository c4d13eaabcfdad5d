"""Validation as the API and the CLI use it: the runtime's validator with the tenant's context."""

from typing import Any

from django.conf import settings

from runtime.validation import ValidationOptions, ValidationResult, validate_spec
from tenants.models import Tenant
from tenants.selectors import tenant_env_allowed


def validation_options(*, tenant: Tenant | None, only_node: str | None = None) -> ValidationOptions:
    """The operator's limits and the tenant's grants. Stored sources join with the sources app."""
    return ValidationOptions(
        max_bytes=settings.AGENTFLOW_MAX_SPEC_BYTES,
        max_nodes=settings.AGENTFLOW_MAX_SPEC_NODES,
        env_allowed=tenant_env_allowed(tenant) if tenant is not None else None,
        only_node=only_node,
    )


def workflow_validate(
    *, spec: Any, tenant: Tenant | None, only_node: str | None = None
) -> ValidationResult:
    """Validate a spec (parsed JSON, or JSON text for line/column) for a tenant."""
    return validate_spec(spec, validation_options(tenant=tenant, only_node=only_node))
