"""Start a run of a stored workflow from its admin page: a version, the initial state (a field
per key its input node asks for, and a JSON box for any other), sync or background. It lands
on the run's admin page.

Served at /admin/workflows/workflow/<id>/run/ (agentflow_site/urls.py): the view runs
workflows, so it lives here; workflows never imports executions.

Replay a finished run from its page (ExecutionAdmin.replay_view): the form and the call of
executions.replay, as the API makes it."""

import contextlib
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from executions.models import Execution
from executions.replay import ReplayRefused, execution_replay
from executions.services import ExecutionCrashed, execution_run, execution_start
from executions.state_fields import state_fields, state_from
from tenants import staff
from workflows.models import Workflow
from workflows.services import WorkflowInvalid

START_PERMISSION = "executions.add_execution"
MODES = (("sync", "Now, here: wait for the end"), ("background", "In the background (workers)"))
REPLAY_MODES = (("sync", "Now, here: wait for the end"), ("async", "In the background (workers)"))
REPLAY_FORM = "af-replay-form"
"""The id of the replay's <form>: its fields sit in the run view, inside the admin's own form
(a form may not hold another), and name it with `form=`."""


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


class ReplayForm(forms.Form):
    """What a replay may change: the version, the node to run afresh from, the mode."""

    prefix = "replay"
    version = forms.TypedChoiceField(coerce=int, empty_value=None, required=False)
    from_node = forms.ChoiceField(label="Run afresh from node", required=False)
    mode = forms.ChoiceField(choices=REPLAY_MODES, widget=forms.RadioSelect)

    def __init__(self, *args: Any, execution: Execution, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        version, from_node = self.fields["version"], self.fields["from_node"]
        assert isinstance(version, forms.TypedChoiceField)
        assert isinstance(from_node, forms.ChoiceField)
        ran = f" (v{execution.workflow_version})" if execution.workflow_version else ""
        version.choices = [("", f"the spec it ran{ran}"), *_saved_versions(execution)]
        nodes = [(n, n) for n in _node_ids(execution.spec)]
        from_node.choices = [("", "none: every call answered from the record"), *nodes]
        self.fields["mode"].initial = execution.mode
        for field in self.fields.values():
            field.widget.attrs["form"] = REPLAY_FORM


def _saved_versions(execution: Execution) -> list[tuple[int, str]]:
    workflow = execution.workflow
    if workflow is None or workflow.deleted_at is not None:
        return []  # a run of an inline spec, or of a workflow deleted since: nothing to pick
    return _versions(workflow)


def _node_ids(spec: Any) -> list[str]:
    nodes = spec.get("nodes") if isinstance(spec, dict) else None
    return [str(n["id"]) for n in nodes or [] if isinstance(n, dict) and "id" in n]


def replay_start(request: HttpRequest, execution: Execution, form: ReplayForm) -> str | None:
    """Replay `execution` as `form` asks (executions.replay, as the API does; a sync replay
    runs here, to its end): the new run's id, or None with a message saying why not."""
    asked = form.cleaned_data
    try:
        replay, validated = execution_replay(
            execution=execution,
            created_by=f"user:{request.user.get_username()}",
            version=asked["version"],
            from_node=asked["from_node"],
            mode=asked["mode"],
        )
    except ReplayRefused as exc:
        messages.warning(request, f"Not replayed: {exc.message}")
        return None
    except WorkflowInvalid as exc:
        first = exc.result.errors[0].message if exc.result.errors else ""
        messages.error(request, f"Not replayed: the spec no longer validates: {first}")
        return None
    if replay.mode == "async":
        messages.success(request, f"This replay of {execution.pk} is queued: a worker runs it.")
        return replay.pk
    with contextlib.suppress(ExecutionCrashed):  # recorded as its failure, which its page shows
        execution_run(execution_id=replay.id, validated=validated, claimed=True)
    messages.success(
        request,
        f"This run replays {execution.pk}: each provider call that run made too was answered "
        "from its record.",
    )
    return replay.pk
