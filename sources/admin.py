from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from sources.models import Source, SourceVersion
from tenants.admin_scope import TenantScopedAdmin


class SourceVersionInline(admin.TabularInline):
    model = SourceVersion
    extra = 0
    can_delete = False
    fields = ("version", "kind", "config", "created_at", "created_by")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Source)
class SourceAdmin(TenantScopedAdmin):
    """Read-only here: sources are validated (kind, secrets, env grants) through the API."""

    list_display = ("id", "name", "kind", "tenant", "version", "updated_at", "deleted_at")
    list_filter = ("kind", "tenant")
    search_fields = ("id", "name")
    inlines = (SourceVersionInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
