"""The operator's settings turned into what `runtime/` takes: one place for every app."""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from agentflow_site.plugins import load_node_plugins
from runtime.aggregations import AGGREGATIONS
from runtime.budget import UNLIMITED, Budget, DailyBudget, DailyLimits, Ledger, RedisLedger
from runtime.context import ImageStore, RunContext
from runtime.databases import database_factories
from runtime.databases import limits as db_limits
from runtime.databases.functions import sql_policy
from runtime.grants import Grants
from runtime.pricing import DEFAULT_PRICES, PriceTable
from runtime.providers import PROVIDERS
from runtime.ratelimit import MEMORY, RedisLimiter
from runtime.redaction import Redactor
from runtime.sandbox import limits as sandbox_limits
from runtime.validation import PLATFORM_SECRET_NAMES


def price_table() -> PriceTable:
    """The prices runs and estimates use: the built-in table with AGENTFLOW_PRICES over it."""
    return PriceTable({**DEFAULT_PRICES, **settings.AGENTFLOW_PRICES})


def run_context(
    *,
    store_image: ImageStore | None = None,
    tenant: str = "",
    budget: Budget | None = None,
    grants: Grants | None = None,
    trusted_hosts: Iterable[str] = (),
) -> RunContext:
    """A fresh RunContext: providers and databases, prices, aggregation functions, base URLs,
    the tenant's rate-limit buckets (Redis when configured) and its daily budget, and its
    grants (checked as each credential is read; None: unchecked, for the operator's CLI). Every
    granted variable's value is redacted from what the run writes, read or not. `trusted_hosts`
    (the tenant's own list) joins the operator's AGENTFLOW_TRUSTED_HOSTS."""
    extra = {name: import_string(path) for name, path in settings.AGENTFLOW_AGGREGATIONS.items()}
    return RunContext(
        providers={**PROVIDERS, **_databases(tenant)},
        base_urls=settings.AGENTFLOW_PROVIDER_BASE_URLS,
        trusted_hosts=frozenset([*settings.AGENTFLOW_TRUSTED_HOSTS, *trusted_hosts]),
        trusted_provider_hosts=frozenset(settings.AGENTFLOW_TRUSTED_PROVIDER_HOSTS),
        prices=price_table(),
        aggregations={**AGGREGATIONS, **extra},
        store_image=store_image,
        tenant=tenant,
        limiter=RedisLimiter(settings.REDIS_URL) if settings.REDIS_URL else MEMORY,
        max_rate_wait=settings.AGENTFLOW_MAX_RATE_WAIT,
        budget=budget or UNLIMITED,
        limits=settings.AGENTFLOW_RUN_LIMITS,
        grants=grants,
        redactor=Redactor.of(_secret_values(grants)),
    )


def _secret_values(grants: Grants | None) -> dict[str, str]:
    platform = {name: os.environ.get(name, "") for name in PLATFORM_SECRET_NAMES}
    granted = grants.values(os.environ) if grants is not None else {}
    return {name: value for name, value in (platform | granted).items() if value}


def _databases(tenant: str) -> dict[str, Any]:
    """The db adapters under the operator's SQL policy; sqlite reads the tenant's directory."""
    policy = sql_policy(
        pg_functions=settings.AGENTFLOW_PG_ALLOWED_FUNCTIONS,
        pg_schemas=settings.AGENTFLOW_PG_ALLOWED_SCHEMAS,
        mysql_functions=settings.AGENTFLOW_MYSQL_ALLOWED_FUNCTIONS,
        allow_privileged_roles=settings.AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES,
    )
    return database_factories(settings.AGENTFLOW_SQLITE_ROOT, tenant=tenant, policy=policy)


def daily_budget(limits: DailyLimits, *, tenant: str, database: Ledger) -> Budget:
    """The tenant's daily budget (`t<id>`), counted in Redis when configured (a ledger per run:
    its client belongs to the run's loop), else in `database`."""
    if limits.unlimited:
        return UNLIMITED
    ledger = RedisLedger(settings.REDIS_URL, tenant) if settings.REDIS_URL else database
    return DailyBudget(ledger, limits, max_wait=settings.AGENTFLOW_MAX_RATE_WAIT)


def tenant_sqlite_dir(tenant_id: int) -> Path:
    """Where a tenant's sqlite files go (the `tenant` key its runs carry, `t<id>`)."""
    return Path(settings.AGENTFLOW_SQLITE_ROOT) / f"t{tenant_id}"


def configure_runtime() -> None:
    """Hand the operator's process-wide caps to runtime/ (once, at start)."""
    db_limits.configure(settings.AGENTFLOW_DB_LIMITS)
    sandbox_limits.configure(settings.AGENTFLOW_SANDBOX_LIMITS)
    load_node_plugins()  # never raises: a broken plugin is reported (check W020, /health)
