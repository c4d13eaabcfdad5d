from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from runtime.grants import GrantError, parse_grant
from tenants import staff
from tenants.admin_scope import TenantScopedAdmin
from tenants.models import ApiKey, AuditEvent, StaffMembership, Tenant
from tenants.services import audit_record

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


def _actor(request) -> str:  # type: ignore[no-untyped-def]
    return f"user:{request.user.get_username()}"


def _changes(form) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The fields a form changed, for the audit; JSON-safe (dates and decimals as text)."""
    return {name: str(form.cleaned_data.get(name)) for name in form.changed_data}


class StaffMembershipInline(admin.TabularInline):
    """Who acts for this tenant in the admin and through the API with their session: a
    superuser's to decide."""

    model = StaffMembership
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("user",)
    verbose_name = "staff member"
    verbose_name_plural = "Staff who act for this tenant"

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return staff.acts_for_all(request.user)

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return staff.acts_for_all(request.user)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return staff.acts_for_all(request.user)


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
class TenantAdmin(TenantScopedAdmin):
    tenant_field = "pk"
    form = TenantForm
    list_display = ("slug", "name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("slug", "name")
    inlines = (ApiKeyInline, StaffMembershipInline)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # its audit trail is append-only: deactivate a tenant (is_active) instead

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        super().save_model(request, obj, form, change)
        if change and not form.changed_data:
            return
        audit_record(
            tenant=obj,
            actor=_actor(request),
            action="tenant.update" if change else "tenant.create",
            target_type="tenant",
            target_id=obj.slug,
            details={"changed": _changes(form), "via": "admin"},
        )

    def save_formset(self, request, form, formset, change):  # type: ignore[no-untyped-def]
        """Memberships added, changed or removed here are audited: they grant access."""
        super().save_formset(request, form, formset, change)
        if formset.model is not StaffMembership:
            return
        tenant = form.instance
        done = [
            *(("staff.add", m, {"role": m.role}) for m in formset.new_objects),
            *(("staff.update", m, {"role": m.role}) for m, _ in formset.changed_objects),
            *(("staff.remove", m, {}) for m in formset.deleted_objects),
        ]
        for action, membership, details in done:
            audit_record(
                tenant=tenant,
                actor=_actor(request),
                action=action,
                target_type="user",
                target_id=str(membership.user.get_username())[:64],
                details={**details, "via": "admin"},
            )


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin, APIKeyModelAdmin):
    list_display = (*APIKeyModelAdmin.list_display, "tenant", "role")  # type: ignore[assignment]
    list_filter = (*APIKeyModelAdmin.list_filter, "role", "tenant")  # type: ignore[assignment]
    search_fields = (*APIKeyModelAdmin.search_fields, "tenant__slug")  # type: ignore[assignment]
    list_select_related = ("tenant",)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # revoke a key instead: its audit trail names it

    def save_model(
        self, request: HttpRequest, obj: Any, form: Any = None, change: bool = False
    ) -> None:
        """Saved as the API saves keys, and audited alike (key.create, key.revoke,
        key.update), with `via: admin`."""
        was_revoked = change and ApiKey.objects.filter(pk=obj.pk, revoked=True).exists()
        super().save_model(request, obj, form, change)
        if not change:
            action, details = "key.create", {"role": obj.role}
        elif obj.revoked and not was_revoked:
            action, details = "key.revoke", {}
        elif form.changed_data:
            action, details = "key.update", {"changed": _changes(form)}
        else:
            return
        audit_record(
            tenant=obj.tenant,
            actor=_actor(request),
            action=action,
            target_type="key",
            target_id=obj.prefix,
            details={**details, "via": "admin"},
        )


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
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
