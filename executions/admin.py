import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from executions.admin_run import START_PERMISSION, ReplayForm, replay_start
from executions.approvals import InvalidAnswer, NotWaiting, execution_resume
from executions.models import Execution, ExecutionProfile
from executions.replay import REPLAYABLE
from executions.run_view import run_view_build
from executions.services import ExecutionFinished, execution_cancel
from tenants.admin_scope import TenantScopedAdmin

PROFILE_CSP = "sandbox allow-scripts"
"""pyinstrument's page runs its own script: sandboxed (an origin of its own), it can neither read
the admin's cookies nor act in the admin's name."""


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class ExecutionProfileInline(admin.TabularInline):
    """Profiles an operator asked for (observability/profiling.py), each opened on its own."""

    model = ExecutionProfile
    extra = 0
    can_delete = False
    fields = ("created_at", "duration", "profile")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExecutionProfile]:
        return super().get_queryset(request).defer("html")

    @admin.display(description="profile")
    def profile(self, obj: ExecutionProfile) -> str:
        url = reverse("admin:executions_execution_profile", args=[quote(obj.execution_id), obj.pk])
        return format_html('<a href="{}" target="_blank" rel="noopener">open</a>', url)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Execution)
class ExecutionAdmin(TenantScopedAdmin):
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
    inlines = (ExecutionProfileInline,)
    # the run view (run_view.html) shows the inputs, output, graph and trace first; these follow
    fieldsets = (
        (
            "Internals",
            {
                "classes": ("collapse",),
                "fields": (
                    ("id", "tenant"),
                    "worker",
                    "heartbeat_at",
                    "deliveries",
                    "cancel_requested",
                    "created_by",
                    "idempotency_key",
                    "request_hash",
                    "spec_digest",
                    "timeout_seconds",
                    "trace_context",
                    "spec_json",
                ),
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)  # the page shows; nothing is edited

    @admin.display(description="spec")
    def spec_json(self, obj: Execution) -> str:
        return _pretty(obj.spec)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a run's record stays: cancel a run, never delete it

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.profile_view)  # staff only, else the login page
        profile = path(
            "<str:object_id>/profiles/<int:profile_id>/",
            view,
            name="executions_execution_profile",
        )
        run = path(
            "<str:object_id>/run/",
            self.admin_site.admin_view(self.run_view),
            name="executions_execution_run",
        )
        cancel = path(
            "<str:object_id>/cancel/",
            self.admin_site.admin_view(self.cancel_view),
            name="executions_execution_cancel",
        )
        resume = path(
            "<str:object_id>/resume/",
            self.admin_site.admin_view(self.resume_view),
            name="executions_execution_resume",
        )
        replay = path(
            "<str:object_id>/replay/",
            self.admin_site.admin_view(self.replay_view),
            name="executions_execution_replay",
        )
        return [profile, run, cancel, resume, replay, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        found = self.get_queryset(request).filter(pk=unquote(object_id)).first()
        context = {**(extra_context or {})}
        if found is not None and self.has_view_permission(request, found):
            context |= _run_context(request, found)
        return super().change_view(request, object_id, form_url, context)

    def run_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The run view's part that changes while a run goes on, for the page to poll."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        found = get_object_or_404(self.get_queryset(request), pk=unquote(object_id))
        context = _run_context(request, found)
        html = render_to_string("admin/executions/execution/run_view.html", context, request)
        run = context["run"]
        response = JsonResponse(
            {"status": run.execution.status, "active": run.active, "html": html}
        )
        response.headers["Cache-Control"] = "private, no-store"
        return response

    @method_decorator(require_POST)
    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Cancel the run (executions.services.execution_cancel), back on its page."""
        if not _may_cancel(request):
            raise PermissionDenied
        execution = get_object_or_404(self.get_queryset(request), pk=unquote(object_id))
        try:
            execution_cancel(execution=execution, actor=f"user:{request.user.get_username()}")
        except ExecutionFinished as exc:
            messages.warning(request, str(exc))
        else:
            messages.success(request, "Cancel requested: the run stops within a second.")
        url = reverse("admin:executions_execution_change", args=[quote(execution.pk)])
        return HttpResponseRedirect(url)

    @method_decorator(require_POST)
    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Answer a waiting run (executions.approvals.execution_resume, as the API does)."""
        if not _may_cancel(request):
            raise PermissionDenied
        execution = get_object_or_404(self.get_queryset(request), pk=unquote(object_id))
        try:
            execution_resume(
                execution=execution,
                answer=request.POST.get("answer", ""),
                comment=request.POST.get("comment", "")[:2000],
                actor=f"user:{request.user.get_username()}"[:64],
            )
        except (InvalidAnswer, NotWaiting) as exc:
            messages.warning(request, str(exc))
        else:
            messages.success(request, "Answered: the run goes on.")
        url = reverse("admin:executions_execution_change", args=[quote(execution.pk)])
        return HttpResponseRedirect(url)

    @method_decorator(require_POST)
    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Replay the finished run (executions.replay, as the API does), on the new run's page;
        back on this one, saying why, when it is refused."""
        if not _may_replay(request):
            raise PermissionDenied
        execution = get_object_or_404(self.get_queryset(request), pk=unquote(object_id))
        form = ReplayForm(request.POST, execution=execution)
        replay_id = None
        if form.is_valid():
            replay_id = replay_start(request, execution, form)
        else:
            messages.warning(request, f"Not replayed: {_form_errors(form)}")
        target = replay_id or execution.pk
        return HttpResponseRedirect(
            reverse("admin:executions_execution_change", args=[quote(target)])
        )

    def profile_view(self, request: HttpRequest, object_id: str, profile_id: int) -> HttpResponse:
        """The stored pyinstrument page, to staff who may view executions."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        execution = get_object_or_404(self.get_queryset(request), pk=unquote(object_id))
        found = get_object_or_404(ExecutionProfile, pk=profile_id, execution=execution)
        response = HttpResponse(found.html)
        response.headers["Content-Security-Policy"] = PROFILE_CSP
        response.headers["Cache-Control"] = "private, no-store"
        return response


def _may_cancel(request: HttpRequest) -> bool:
    return bool(request.user.has_perm("executions.change_execution"))


def _may_replay(request: HttpRequest) -> bool:
    """A replay starts a run: as on a workflow's "Start a run" page (executions.admin_run)."""
    user = request.user
    return bool(user.has_perm(START_PERMISSION) and user.has_perm("executions.view_execution"))


def _run_context(request: HttpRequest, execution: Execution) -> dict[str, Any]:
    """The run view's template context: the run, and what this user may do with it."""
    may_replay = _may_replay(request) and execution.status in REPLAYABLE
    return {
        "run": run_view_build(execution),
        "may_cancel": _may_cancel(request),
        "replay_form": ReplayForm(execution=execution) if may_replay else None,
    }


def _form_errors(form: ReplayForm) -> str:
    return "; ".join(
        f"{name}: {' '.join(map(str, errors))}" for name, errors in form.errors.items()
    )
