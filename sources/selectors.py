"""Reads about stored sources."""

from collections.abc import Callable

from django.db.models import Q

from runtime.spec import SourceSpec
from sources.models import Source, SourceQuerySet
from tenants.models import Tenant


def sources_of(tenant: Tenant) -> SourceQuerySet:
    return Source.objects.for_tenant(tenant).alive()


def source_by_ref(tenant: Tenant, ref: str) -> Source | None:
    """A live source of the tenant named by its id (`src_…`) or its name."""
    return sources_of(tenant).filter(Q(id=ref) | Q(name=ref)).order_by("-id").first()


def source_resolver(tenant: Tenant) -> Callable[[str], SourceSpec | None]:
    """What validation calls for a node's `source` that no inline source answers."""

    def resolve(ref: str) -> SourceSpec | None:
        source = source_by_ref(tenant, ref)
        if source is None:
            return None
        return SourceSpec.model_validate({"id": ref, "kind": source.kind, "config": source.config})

    return resolve
