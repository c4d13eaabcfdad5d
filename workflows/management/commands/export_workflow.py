import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from workflows.management.commands._transfer import tenant_named
from workflows.models import Workflow
from workflows.transfer import workflow_export


class Command(BaseCommand):
    help = (
        "Export a stored workflow of a tenant as the document POST /api/v1/workflows/import "
        "(and `manage.py import_workflow`) takes: every version and the stored sources they use."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workflow", help="the workflow's id (wf_…) or name")
        parser.add_argument("--tenant", required=True, help="the slug of the workflow's tenant")
        parser.add_argument("-o", "--output", help="write it to this file (default: stdout)")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_named(opts["tenant"])
        wanted = opts["workflow"]
        alive = Workflow.objects.for_tenant(tenant).alive()
        workflow = alive.filter(Q(pk=wanted) | Q(name=wanted)).first()
        if workflow is None:
            raise CommandError(
                f"Tenant '{tenant.slug}' has no workflow with id or name {wanted!r}."
            )
        text = json.dumps(workflow_export(workflow=workflow), indent=2, ensure_ascii=False)
        if not opts["output"]:
            self.stdout.write(text)
            return
        try:
            Path(opts["output"]).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {opts['output']}: {exc.strerror}.") from exc
        self.stdout.write(
            f"{workflow.id} ({workflow.name!r}, version {workflow.version}) → {opts['output']}"
        )
