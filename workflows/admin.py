import json
import re
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from runtime.errors import ErrorType
from runtime.graph_render import PictureTooLarge
from tenants.admin_scope import TenantScopedAdmin
from workflows.diff import SpecDiff, spec_diff
from workflows.models import Workflow, WorkflowVersion
from workflows.pictures import MERMAID, picture_html, spec_picture
from workflows.services import WorkflowInvalid, workflow_create, workflow_update, workflow_validate
from workflows.transfer import workflow_export

UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")


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

    preview: Any = None
    """A spec sent that did not validate, to be drawn beside its errors (None: nothing to draw)."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is not None and "spec" in data:
            spec = data["spec"]
            result = workflow_validate(spec=spec, tenant=tenant)
            for error in result.errors:
                self.add_error("spec", f"{error.path or '/'}: {error.type}: {error.message}")
            too_large = any(e.type == ErrorType.SPEC_TOO_LARGE for e in result.errors)
            if result.errors and not too_large and isinstance(spec, dict):
                self.preview = spec
        return data


def _picture(spec: dict[str, Any]) -> SafeString:
    try:
        return picture_html(spec)
    except PictureTooLarge as exc:
        return format_html("<p>{}</p>", str(exc))


def _mermaid(spec: dict[str, Any]) -> SafeString:
    try:
        text = spec_picture(spec, MERMAID)
    except PictureTooLarge:
        return format_html("")
    return format_html(
        '<details class="af-mermaid"><summary>Mermaid text, for docs</summary>'
        "<pre>{}</pre></details>",
        text,
    )


def _edge_name(edge: dict[str, Any]) -> str:
    when = f" [{edge['condition']}]" if edge.get("condition") is not None else ""
    return f"{edge['from']} → {edge['to']}{when}"


def _change_lines(found: SpecDiff) -> list[str]:
    """The diff as lines a person reads: `node answer: metadata.template`, `edge a → b: added`."""
    lines: list[str] = []
    for kind in ("nodes", "queues", "sources"):
        part = found[kind]
        name = kind[:-1]
        lines += [f"{name} {i}: added" for i in part["added"]]
        lines += [f"{name} {i}: removed" for i in part["removed"]]
        lines += [f"{name} {c['id']}: {', '.join(c['fields'])}" for c in part["changed"]]
        lines += [f"{kind}: reordered"] if part["reordered"] else []
    edges = found["edges"]
    lines += [f"edge {_edge_name(e)}: added" for e in edges["added"]]
    lines += [f"edge {_edge_name(e)}: removed" for e in edges["removed"]]
    lines += [f"edge {_edge_name(e)}: {', '.join(e['fields'])}" for e in edges["changed"]]
    lines += ["edges: reordered"] if edges["reordered"] else []
    return lines + found["other"]


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    extra = 0
    can_delete = False
    fields = ("version", "created_at", "created_by", "picture")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="picture")
    def picture(self, obj: WorkflowVersion) -> str:
        url = reverse(
            "admin:workflows_workflow_version", args=[quote(obj.workflow_id), obj.version]
        )
        return format_html('<a href="{}">picture and spec of v{}</a>', url, obj.version)


@admin.register(Workflow)
class WorkflowAdmin(TenantScopedAdmin):
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
        "picture",
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

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [f for f in super().get_fields(request, obj) if f != "picture"]
        return ["picture", *fields] if obj else fields  # the picture first, on a saved one

    @admin.display(description="Graph")
    def picture(self, obj: Workflow) -> SafeString:
        return format_html("{}{}", _picture(obj.spec), _mermaid(obj.spec))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        form = getattr(context.get("adminform"), "form", None)
        sent = getattr(form, "preview", None)
        if sent is not None:
            context["spec_preview"] = _picture(sent)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self) -> list[URLPattern]:
        version = path(
            "<path:object_id>/versions/<int:version>/",
            self.admin_site.admin_view(self.version_view),
            name="workflows_workflow_version",
        )
        export = path(
            "<path:object_id>/export/",
            self.admin_site.admin_view(self.export_view),
            name="workflows_workflow_export",
        )
        return [version, export, *super().get_urls()]

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The export document (workflows.transfer, as the API's), downloaded as a file."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        workflows = self.get_queryset(request).filter(deleted_at__isnull=True)
        workflow = get_object_or_404(workflows, pk=unquote(object_id))
        filename = UNSAFE_IN_FILENAME.sub("-", workflow.name) + "-export.json"
        response = JsonResponse(workflow_export(workflow=workflow), json_dumps_params={"indent": 2})
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        response.headers["Cache-Control"] = "private, no-store"
        return response

    def version_view(self, request: HttpRequest, object_id: str, version: int) -> HttpResponse:
        """One saved version: its picture and its spec."""
        workflow = get_object_or_404(self.get_queryset(request), pk=unquote(object_id))
        if not self.has_view_or_change_permission(request, workflow):
            raise Http404
        saved = get_object_or_404(WorkflowVersion, workflow=workflow, version=version)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": workflow,
            "saved": saved,
            "title": f"{workflow.name}, version {saved.version}",
            "picture": _picture(saved.spec),
            "mermaid": _mermaid(saved.spec),
            "spec_json": json.dumps(saved.spec, indent=2, ensure_ascii=False),
            "changes": _change_lines(spec_diff(saved.spec, workflow.spec)),
        }
        return TemplateResponse(request, "admin/workflows/workflow/version.html", context)

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
