"""`manage.py profile_run exec_…|wf_…`: run a stored execution's workflow again (or a stored
workflow's current version), here, recorded as a new execution of its tenant, under pyinstrument;
the profile is kept beside that execution and shown to staff in the admin."""

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.admin.utils import quote
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from executions.models import Execution
from executions.services import execution_create, execution_run
from tenants.models import Tenant
from workflows.models import Workflow
from workflows.services import workflow_validate

CREATED_BY = "profile_run"


@dataclass(frozen=True)
class _Target:
    tenant: Tenant
    spec: Any
    state: dict[str, Any]
    workflow: Workflow | None
    version: int | None


class Command(BaseCommand):
    help = (
        "Profile one run: run an execution's workflow and initial state again (or a stored "
        "workflow's current version) in this process, recorded as a new execution, and keep a "
        "pyinstrument profile of it beside that execution (admin, staff only). Its nodes call "
        "their providers again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", help="an execution id (exec_…) or a workflow id (wf_…)")
        parser.add_argument(
            "--state",
            help="the initial state, as a JSON object (default: the "
            "execution's own; {} for a workflow)",
        )
        parser.add_argument("--input", default="", help="the user_input")
        parser.add_argument("--timeout", type=float, help="seconds for the whole run")

    def handle(self, *args: Any, **opts: Any) -> None:
        target = _target(opts["target"])
        state = _state(opts["state"], target.state)
        if opts["input"]:
            state["user_input"] = opts["input"]
        validated = workflow_validate(spec=target.spec, tenant=target.tenant)
        if not validated.valid:
            raise CommandError(f"The workflow is no longer valid: {validated.errors[0].message}")
        execution = execution_create(
            tenant=target.tenant,
            validated=validated,
            initial_state=state,
            timeout_seconds=opts["timeout"],
            created_by=CREATED_BY,
            workflow=target.workflow,
            workflow_version=target.version,
            claim=True,
        )
        ran = execution_run(
            execution_id=execution.id, validated=validated, claimed=True, profile=True
        )
        self._report(ran)

    def _report(self, ran: Execution) -> None:
        profile = ran.profiles.defer("html").first()
        self.stdout.write(f"execution {ran.id}: {ran.status} in {ran.execution_time or 0:.3f} s")
        if profile is None:
            raise CommandError("The run ended before its profile could be kept.")
        url = reverse("admin:executions_execution_profile", args=[quote(ran.id), profile.pk])
        self.stdout.write(f"profile {profile.pk} ({profile.duration:.3f} s profiled): {url}")


def _target(ident: str) -> _Target:
    if ident.startswith("exec_"):
        found = Execution.objects.select_related("tenant", "workflow").filter(pk=ident).first()
        if found is None:
            raise CommandError(f"No execution {ident}.")
        return _Target(
            found.tenant, found.spec, found.initial_state, found.workflow, found.workflow_version
        )
    workflow = Workflow.objects.select_related("tenant").filter(pk=ident).first()
    if workflow is None:
        raise CommandError(f"No execution or workflow {ident}.")
    return _Target(workflow.tenant, workflow.spec, {}, workflow, workflow.version)


def _state(text: str | None, default: dict[str, Any]) -> dict[str, Any]:
    if text is None:
        return dict(default)
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--state is not JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise CommandError("--state must be a JSON object.")
    return state
