import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from executions.models import Execution, NodeRun


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class NodeRunInline(admin.TabularInline):
    model = NodeRun
    extra = 0
    can_delete = False
    fields = (
        "node_id",
        "node_type",
        "attempt",
        "status",
        "started_at",
        "duration",
        "tokens",
        "cost",
        "error",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    """Read-only: executions are written by runs, never by hand."""

    list_display = (
        "id",
        "tenant",
        "workflow_name",
        "status",
        "mode",
        "tokens_used",
        "cost",
        "created_at",
        "execution_time",
    )
    list_filter = ("status", "mode", "tenant")
    search_fields = ("id", "workflow_name")
    list_select_related = ("tenant",)
    inlines = (NodeRunInline,)
    exclude = ("spec", "initial_state", "final_state", "error")
    readonly_fields = (
        "id",
        "tenant",
        "status",
        "mode",
        "workflow_name",
        "spec_digest",
        "tokens_used",
        "cost",
        "timeout_seconds",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "execution_time",
        "error_json",
        "initial_state_json",
        "final_state_json",
        "spec_json",
    )

    @admin.display(description="error")
    def error_json(self, obj: Execution) -> str:
        return _pretty(obj.error)

    @admin.display(description="initial state")
    def initial_state_json(self, obj: Execution) -> str:
        return _pretty(obj.initial_state)

    @admin.display(description="final state")
    def final_state_json(self, obj: Execution) -> str:
        return _pretty(obj.final_state)

    @admin.display(description="spec")
    def spec_json(self, obj: Execution) -> str:
        return _pretty(obj.spec)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
