"""Admin pages show a staff user the tenants they act for (tenants/staff.py), and only those."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from tenants import staff


class TenantScopedAdmin(admin.ModelAdmin):
    """Lists, pages, searches and tenant pickers narrowed to the user's tenants.

    `tenant_field` leads from the model to its tenant (`pk` for the tenants themselves). Every
    object page goes through `get_queryset`, so another tenant's row is a 404, never a 403 that
    would tell it exists."""

    tenant_field = "tenant"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return staff.scoped(super().get_queryset(request), request.user, self.tenant_field)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if db_field.name == "tenant":
            kwargs["queryset"] = staff.tenant_choices(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request: HttpRequest) -> Any:
        # the tenant filter lists every tenant's slug: only for those who act for all
        found = super().get_list_filter(request)
        if staff.acts_for_all(request.user):
            return found
        return tuple(f for f in found if f != "tenant")
