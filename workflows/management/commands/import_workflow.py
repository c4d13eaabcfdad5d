import re
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework.exceptions import APIException

from workflows.imports.report import ImportOptions
from workflows.management.commands._transfer import cli_actor, tenant_named
from workflows.transfer import FORMATS, ImportInvalid, ImportRefused, workflow_import
from workflows.transfer_api import ENV_NAME, NAME, document_from_text


class Command(BaseCommand):
    help = (
        "Import a workflow for a tenant from an AgentFlow export, a Dify DSL (YAML) or a Flowise "
        "chatflow, as POST /api/v1/workflows/import does: prints the new workflow and what "
        "mapped; exit status 1, nothing written, when the import is refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the document (JSON or YAML), or - for standard input")
        parser.add_argument("--tenant", required=True, help="the slug of the tenant to import to")
        parser.add_argument("--name", help="import under this name (default: the document's)")
        parser.add_argument("--format", choices=FORMATS, help="default: detected")
        parser.add_argument(
            "--api-key-env", help="the variable inline LLM sources read their key from"
        )
        parser.add_argument(
            "--source-map",
            nargs="+",
            default=[],
            metavar="PROVIDER=SOURCE",
            help="a stored source (id or name) for the llm nodes of a provider, e.g. openai=gpt",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = tenant_named(opts["tenant"])
        options = ImportOptions(_source_map(opts["source_map"]), _env_name(opts["api_key_env"]))
        document = self._document(opts["file"])
        try:
            done = workflow_import(
                tenant=tenant,
                document=document,
                actor=cli_actor(),
                fmt=opts["format"],
                name=_name(opts["name"]),
                options=options,
            )
        except ImportRefused as exc:
            if exc.report is not None:
                self._report(exc.report.to_dict())
            self.stderr.write(f"{exc.field or '/'}: {exc}")
            raise CommandError("The import is refused; nothing was written.") from exc
        except ImportInvalid as exc:
            if exc.report is not None:
                self._report(exc.report.to_dict())
            for error in exc.errors:
                self.stderr.write(
                    f"{error.get('path') or '/'}: {error['type']}: {error['message']}"
                )
            raise CommandError(
                f"The import is refused: {len(exc.errors)} problem(s); nothing was written."
            ) from exc
        workflow = done.workflow
        self.stdout.write(
            f"{workflow.id}: imported {workflow.name!r} ({done.format}), "
            f"version {workflow.version}, for tenant {tenant.slug}"
        )
        self._report(done.report)

    def _document(self, name: str) -> Any:
        try:
            raw = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {name}: {exc.strerror}.") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{name} is not UTF-8 text: {exc.reason}.") from exc
        try:
            return document_from_text(raw)  # the API's own reading: JSON or safe YAML
        except APIException as exc:
            raise CommandError(f"{name}: {exc.detail}") from exc

    def _report(self, report: dict[str, Any]) -> None:
        for label, key in (
            ("sources created", "sources_created"),
            ("sources reused", "sources_reused"),
        ):
            if report.get(key):
                self.stdout.write(f"{label}: {', '.join(report[key])}")
        if "versions" in report:
            self.stdout.write(f"versions: {report['versions']}")
        if report.get("mapped"):
            self.stdout.write("mapped:")
        for m in report.get("mapped", []):
            self.stdout.write(f"  {m['kind']} {m['id']} → {m['node_id']} ({m['type']})")
        if report.get("not_mapped"):
            self.stdout.write("not mapped:")
        for n in report.get("not_mapped", []):
            self.stdout.write(f"  {n['kind']} {n['id']}: {n['reason']}")
        for note in report.get("notes", []):
            self.stdout.write(f"note: {note}")


def _source_map(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        provider, _, source = pair.partition("=")
        if not provider or not source:
            raise CommandError(f"--source-map: {pair!r} is not PROVIDER=SOURCE (e.g. openai=gpt).")
        found[provider] = source
    return found


def _env_name(name: str | None) -> str | None:
    if name is not None and not re.match(ENV_NAME, name):
        raise CommandError(f"--api-key-env: {name!r} is not an environment variable's name.")
    return name


def _name(name: str | None) -> str | None:
    if name is not None and (len(name) > 200 or not re.match(NAME, name)):
        raise CommandError("--name: at most 200 characters, and no control characters.")
    return name
