"""The operator's settings turned into what `runtime/` takes: one place for every app."""

from django.conf import settings
from django.utils.module_loading import import_string

from runtime.aggregations import AGGREGATIONS
from runtime.context import ImageStore, RunContext
from runtime.databases import database_factories
from runtime.pricing import DEFAULT_PRICES, PriceTable
from runtime.providers import PROVIDERS


def run_context(*, store_image: ImageStore | None = None) -> RunContext:
    """A fresh RunContext: providers and databases, prices, aggregation functions, base URLs."""
    extra = {name: import_string(path) for name, path in settings.AGENTFLOW_AGGREGATIONS.items()}
    return RunContext(
        providers={**PROVIDERS, **database_factories(settings.AGENTFLOW_SQLITE_ROOT)},
        base_urls=settings.AGENTFLOW_PROVIDER_BASE_URLS,
        prices=PriceTable({**DEFAULT_PRICES, **settings.AGENTFLOW_PRICES}),
        aggregations={**AGGREGATIONS, **extra},
        store_image=store_image,
    )
