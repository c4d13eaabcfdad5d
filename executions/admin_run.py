"""Start a run of a stored workflow from its admin page: a version, the initial state (a field
per key its input node asks for, and a JSON box for any other), sync or background. It lands
on the run's admin page.

Served at /admin/workflows/workflow/<id>/run/ (agentflow_site/urls.py): the view runs
workflows, so it lives here; workflows never imports executions."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from executions.services import execution_start
from executions.state_fields import state_fields, state_from
from tenants import staff
from workflows.models import Workflow
from workflows.services import WorkflowInvalid

START_PERMISSION = "executions.add_execution"
MODES = (("sync", "Now, here: wait for the end"), ("background", "In the background (workers)"))


class StartRunForm(forms.Form):
    required_css_class = "required"  # the admin's bold label
    version = forms.TypedChoiceField(coerce=int)
    initial_state = forms.JSONField(
        label="Initial state (JSON)",
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "spellcheck": "false"}),
        help_text="A JSON object: any other state the run starts from. The fields above win.",
    )
    mode = forms.ChoiceField(choices=MODES, initial="sync", widget=forms.RadioSelect)

    def __init__(self, *args: Any, workflow: Workflow, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the current version's input node lays out the fields; another version's run still
        # checks its own (a refusal is that run's failure, on its page)
        version, rest = self.fields["version"], ("initial_state", "mode")
        generated = state_fields(workflow.spec)
        self.fields = {"version": version, **generated, **{n: self.fields[n] for n in rest}}
        assert isinstance(version, forms.TypedChoiceField)
        version.choices, version.initial = _versions(workflow), workflow.version

    def clean_initial_state(self) -> dict[str, Any]:
        value = self.cleaned_data["initial_state"]
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("The initial state must be a JSON object: {…}.")
        return value

    def state(self) -> dict[str, Any]:
        """The run's initial state: the JSON box, then the fields on top."""
        return {**self.cleaned_data["initial_state"], **state_from(self.cleaned_data)}


def _versions(workflow: Workflow) -> list[tuple[int, str]]:
    versions = workflow.versions.order_by("-version").values_list("version", flat=True)
    return [(v, f"v{v}" + (" (current)" if v == workflow.version else "")) for v in versions]


def _allowed(request: HttpRequest) -> bool:
    user = request.user
    return user.has_perm(START_PERMISSION) and user.has_perm("workflows.view_workflow")


def start_run_view(request: HttpRequest, object_id: str) -> HttpResponse:
    """GET: the form. POST: start the run, then go to its page."""
    if not _allowed(request):
        raise PermissionDenied
    workflows = staff.scoped(Workflow.objects.alive(), request.user)
    workflow = get_object_or_404(workflows.select_related("tenant"), pk=unquote(object_id))
    form = StartRunForm(request.POST or None, workflow=workflow)
    if request.method == "POST" and form.is_valid():
        started = _start(request, workflow, form)
        if started is not None:
            return started
    return TemplateResponse(
        request, "admin/workflows/workflow/run.html", _context(request, workflow, form)
    )


def _start(request: HttpRequest, workflow: Workflow, form: StartRunForm) -> HttpResponse | None:
    try:
        execution = execution_start(
            workflow=workflow,
            version=form.cleaned_data["version"],
            initial_state=form.state(),
            background=form.cleaned_data["mode"] == "background",
            created_by=f"staff:{request.user.get_username()}",
        )
    except WorkflowInvalid as exc:
        messages.error(request, f"This version no longer validates: {exc}")
        return None
    except Workflow.DoesNotExist:
        messages.error(request, "The workflow was deleted meanwhile.")
        return None
    # quoted as the admin quotes keys: an id such as exec_25… would otherwise read as exec%…
    url = reverse("admin:executions_execution_change", args=[quote(execution.pk)])
    return HttpResponseRedirect(url)


def _context(request: HttpRequest, workflow: Workflow, form: StartRunForm) -> dict[str, Any]:
    return {
        **admin.site.each_context(request),
        "opts": Workflow._meta,
        "original": workflow,
        "form": form,
        "title": f"Run {workflow.name}",
    }
