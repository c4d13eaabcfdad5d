import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from workflows.models import Workflow, WorkflowVersion
from workflows.services import WorkflowInvalid, workflow_create, workflow_update, workflow_validate


class PrettyJSONField(forms.JSONField):
    """JSON shown indented, so a spec reads like the file it came from."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class WorkflowForm(forms.ModelForm):
    spec = PrettyJSONField(widget=forms.Textarea(attrs={"rows": 30, "cols": 100}))

    class Meta:
        model = Workflow
        fields = ("tenant", "spec")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is not None and "spec" in data:
            result = workflow_validate(spec=data["spec"], tenant=tenant)
            for error in result.errors:
                self.add_error("spec", f"{error.path or '/'}: {error.type}: {error.message}")
        return data


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    extra = 0
    can_delete = False
    fields = ("version", "created_at", "created_by")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    """Saving here validates like the API and keeps a version for every change."""

    form = WorkflowForm
    list_display = ("id", "name", "tenant", "version", "node_count", "status", "updated_at")
    list_filter = ("status", "tenant")
    search_fields = ("id", "name")
    list_select_related = ("tenant",)
    inlines = (VersionInline,)
    readonly_fields = (
        "id",
        "name",
        "version",
        "node_count",
        "status",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
        "deleted_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*self.readonly_fields, "tenant") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Workflow, form: Any, change: bool) -> None:
        actor = f"user:{request.user.get_username()}"
        try:
            if change:
                saved = workflow_update(workflow=obj, spec=form.cleaned_data["spec"], actor=actor)
            else:
                saved = workflow_create(tenant=obj.tenant, spec=obj.spec, actor=actor)
        except WorkflowInvalid as exc:  # clean() already refused it; a race with another save
            raise ValueError(str(exc)) from exc
        obj.pk, obj.version = saved.pk, saved.version

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deletion is soft, through the API, which refuses it while runs are active
