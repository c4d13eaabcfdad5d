from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from runtime.grants import GrantError, parse_grant
from tenants.models import ApiKey, AuditEvent, Tenant

# The library's own tenant-less key model stays unused; only tenant keys are managed here.
admin.site.unregister(APIKey)


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ("prefix", "name", "role", "created", "expiry_date", "revoked")
    readonly_fields = ("prefix", "created")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # a new key's secret is shown once, on the API key page


class TenantForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = "__all__"  # noqa: DJ007 (every field is the operator's to edit here)

    def clean_allowed_env(self) -> object:
        """Each grant as runtime/grants.py reads it (`NAME`, `PREFIX_*`, `NAME@kind|kind:host`)."""
        entries = self.cleaned_data["allowed_env"]
        if not isinstance(entries, list):
            raise ValidationError('Give a list of grants, e.g. ["OPENAI_API_KEY@openai"].')
        for entry in entries:
            try:
                parse_grant(entry)
            except GrantError as exc:
                raise ValidationError(str(exc)) from None
        return entries


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = ("slug", "name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("slug", "name")
    inlines = (ApiKeyInline,)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # its audit trail is append-only: deactivate a tenant (is_active) instead


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "tenant", "role")  # type: ignore[assignment]
    list_filter = (*APIKeyModelAdmin.list_filter, "role", "tenant")  # type: ignore[assignment]
    search_fields = (*APIKeyModelAdmin.search_fields, "tenant__slug")  # type: ignore[assignment]
    list_select_related = ("tenant",)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Append-only: visible, never editable."""

    list_display = ("at", "tenant", "actor", "action", "target_type", "target_id", "ip")
    list_filter = ("action", "tenant")
    search_fields = ("actor", "target_id", "request_id")
    date_hierarchy = "at"

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
