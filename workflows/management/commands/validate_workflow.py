import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Tenant
from workflows.services import workflow_validate


class Command(BaseCommand):
    help = (
        "Validate a WorkflowSpec file (or - for standard input). Prints one "
        "'file:line:column: type: message' line per problem; exit status 1 when it has errors."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path to the spec, or - for standard input")
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--tenant", help="check env-variable grants (and later stored sources) of this tenant"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        name = opts["file"]
        text = self._read(name)
        tenant = None
        if opts["tenant"]:
            tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {opts['tenant']!r}.")
        result = workflow_validate(spec=text, tenant=tenant)
        if opts["format"] == "json":
            self.stdout.write(json.dumps(result.to_dict(), indent=2))
        else:
            label = "<stdin>" if name == "-" else name
            for severity, problems in (("", result.errors), ("warning: ", result.warnings)):
                for p in problems:
                    where = f"{label}:{p.line or 0}:{p.column or 0}"
                    node = f" [{p.node_id}]" if p.node_id else ""
                    self.stdout.write(f"{where}: {severity}{p.type}: {p.message}{node}")
            if result.valid:
                self.stdout.write(f"{label}: valid")
        if not result.valid:
            sys.exit(1)

    def _read(self, name: str) -> bytes:
        if name == "-":
            return sys.stdin.buffer.read()
        try:
            return Path(name).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {name}: {exc.strerror}.") from exc
