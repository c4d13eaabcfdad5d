"""The operator's settings turned into what `runtime/` takes: one place for every app."""

from django.conf import settings
from django.utils.module_loading import import_string

from runtime.aggregations import AGGREGATIONS
from runtime.budget import Budget
from runtime.context import ImageStore, RunContext
from runtime.databases import database_factories
from runtime.databases import limits as db_limits
from runtime.pricing import DEFAULT_PRICES, PriceTable
from runtime.providers import PROVIDERS
from runtime.ratelimit import MEMORY, RedisLimiter
from runtime.sandbox import limits as sandbox_limits


def run_context(
    *, store_image: ImageStore | None = None, tenant: str = "", budget: Budget | None = None
) -> RunContext:
    """A fresh RunContext: providers and databases, prices, aggregation functions, base URLs,
    the tenant's rate-limit buckets (Redis when configured) and what its budget leaves."""
    extra = {name: import_string(path) for name, path in settings.AGENTFLOW_AGGREGATIONS.items()}
    return RunContext(
        providers={**PROVIDERS, **database_factories(settings.AGENTFLOW_SQLITE_ROOT)},
        base_urls=settings.AGENTFLOW_PROVIDER_BASE_URLS,
        trusted_provider_hosts=frozenset(settings.AGENTFLOW_TRUSTED_PROVIDER_HOSTS),
        prices=PriceTable({**DEFAULT_PRICES, **settings.AGENTFLOW_PRICES}),
        aggregations={**AGGREGATIONS, **extra},
        store_image=store_image,
        tenant=tenant,
        limiter=RedisLimiter(settings.REDIS_URL) if settings.REDIS_URL else MEMORY,
        max_rate_wait=settings.AGENTFLOW_MAX_RATE_WAIT,
        budget=budget or Budget(),
        limits=settings.AGENTFLOW_RUN_LIMITS,
    )


def configure_runtime() -> None:
    """Hand the operator's process-wide caps to runtime/ (once, at start)."""
    db_limits.configure(settings.AGENTFLOW_DB_LIMITS)
    sandbox_limits.configure(settings.AGENTFLOW_SANDBOX_LIMITS)
