"""Schedules in the admin: what fires when, what the last tick did, and pause or resume.

Creating and editing a schedule stays with the API, which checks the cron, the time zone and the
pinned version; here staff see the tenants' schedules they act for and can pause or resume them
(through `schedule_update`, so the change is audited and a resume counts from now).
"""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from schedules.models import Schedule, ScheduleTick
from schedules.services import schedule_update
from tenants.admin_scope import TenantScopedAdmin


class ScheduleTickInline(admin.TabularInline):
    model = ScheduleTick
    extra = 0
    can_delete = False
    fields = ("tick", "fired_at", "execution_id", "error")
    readonly_fields = fields
    ordering = ("-tick",)
    max_num = 0

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Schedule)
class ScheduleAdmin(TenantScopedAdmin):
    list_display = (
        "id",
        "workflow",
        "cron",
        "timezone",
        "paused",
        "next_run_at",
        "last_run_at",
        "last_execution_id",
        "tenant",
    )
    list_filter = ("paused", "tenant")
    search_fields = ("id", "workflow__name", "cron")
    list_select_related = ("workflow", "tenant")
    readonly_fields = (
        "id",
        "tenant",
        "workflow",
        "cron",
        "timezone",
        "version",
        "paused",
        "next_run_at",
        "last_run_at",
        "last_execution_id",
        "last_error",
        "created_by",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields
    inlines = (ScheduleTickInline,)
    actions = ("pause", "resume")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Pause the selected schedules", permissions=("change",))
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_paused(request, queryset, paused=True)

    @admin.action(description="Resume the selected schedules", permissions=("change",))
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_paused(request, queryset, paused=False)

    def _set_paused(self, request: HttpRequest, queryset: QuerySet[Schedule], paused: bool) -> None:
        actor = f"user:{request.user.get_username()}"[:64]
        changed = 0
        for schedule in queryset.filter(paused=not paused):
            schedule_update(schedule=schedule, changes={"paused": paused}, actor=actor)
            changed += 1
        verb = "Paused" if paused else "Resumed"
        messages.success(request, f"{verb} {changed} schedule(s).")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # the page is read-only (no save button); the change permission gates the actions
        return obj is None and super().has_change_permission(request, obj)
