"""Which tenants a signed-in staff user acts for.

A superuser acts for every tenant in the admin. Any other staff user acts for the tenants they
hold a `StaffMembership` of, and sees nothing of the others: lists leave their rows out and
their pages are 404s, as in the API. A staff user with no membership sees no tenant's data.

Through the API a session acts for exactly one tenant, with its membership's role: the only
one, or the one named by the `X-AgentFlow-Tenant` header when there are several.
"""

from typing import Any

from django.db.models import Model, QuerySet

from tenants.models import StaffMembership, Tenant

TENANT_HEADER = "HTTP_X_AGENTFLOW_TENANT"


def acts_for_all(user: Any) -> bool:
    return bool(user.is_active and user.is_superuser)


def tenant_ids(user: Any) -> set[int] | None:
    """The ids of the tenants `user` acts for; None when every tenant."""
    if acts_for_all(user):
        return None
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return set()
    cached = getattr(user, "_agentflow_tenant_ids", None)
    if cached is None:
        cached = set(StaffMembership.objects.filter(user=user).values_list("tenant_id", flat=True))
        user._agentflow_tenant_ids = cached  # one query per request: the user object is per request
    return set(cached)


def scoped[M: Model](queryset: QuerySet[M], user: Any, field: str = "tenant") -> QuerySet[M]:
    """`queryset` narrowed to the rows of the tenants `user` acts for (`field` leads to the
    tenant: `tenant`, `workflow__tenant`; `pk` on the tenants themselves)."""
    ids = tenant_ids(user)
    if ids is None:
        return queryset
    lookup = "pk__in" if field == "pk" else f"{field}_id__in"
    return queryset.filter(**{lookup: ids})


def may_see(user: Any, tenant_id: int | None) -> bool:
    ids = tenant_ids(user)
    return ids is None or tenant_id in ids


class NoTenant(Exception):
    """A staff session that cannot say which tenant it acts for; the message says what to do."""


def acting_membership(user: Any, slug: str | None) -> StaffMembership:
    """The membership a staff session calls the API with."""
    memberships = StaffMembership.objects.filter(user=user, tenant__is_active=True).select_related(
        "tenant"
    )
    if slug:
        found = memberships.filter(tenant__slug=slug).first()
        if found is None:
            raise NoTenant(f"You do not act for a tenant '{slug[:63]}' (X-AgentFlow-Tenant).")
        return found
    mine = list(memberships[:2])
    if not mine:
        raise NoTenant(
            "Your staff user acts for no active tenant: a superuser adds you to one on its "
            "admin page (Staff), or send an API key."
        )
    if len(mine) > 1:
        raise NoTenant("You act for several tenants: name one in the X-AgentFlow-Tenant header.")
    return mine[0]


def tenant_choices(user: Any) -> QuerySet[Tenant]:
    return scoped(Tenant.objects.all(), user, field="pk")
