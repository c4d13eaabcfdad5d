"""Reads about tenants."""

from collections.abc import Callable, Iterable

from django.conf import settings

from tenants.models import Tenant


def _matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    exact = {p for p in patterns if not p.endswith("*")}
    prefixes = tuple(p[:-1] for p in patterns if p.endswith("*") and len(p) > 1)
    return lambda name: name in exact or (bool(prefixes) and name.startswith(prefixes))


def tenant_env_allowed(tenant: Tenant | None) -> Callable[[str], bool]:
    """Which environment variables a tenant's sources may name: the operator-wide grant
    (AGENTFLOW_ALLOWED_ENV) plus the tenant's own `allowed_env`, exact or `PREFIX_*`.

    The platform's own variables stay refused by the validator whatever is granted here.
    """
    patterns = [*settings.AGENTFLOW_ALLOWED_ENV, *(tenant.allowed_env if tenant else [])]
    return _matcher([str(p) for p in patterns])
