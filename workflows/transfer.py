"""Export a stored workflow with its versions and sources as one document, and import such a
document (or a Dify DSL or Flowise chatflow export) as a new workflow of a tenant."""

import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from runtime.errors import SpecError
from sources.models import Source
from sources.selectors import sources_of
from sources.services import SourceInvalid, source_create
from tenants.models import Tenant
from tenants.services import audit_record
from workflows.imports import dify, flowise
from workflows.imports.report import Conversion, ImportOptions, ImportReport, NotConvertible
from workflows.models import Workflow, WorkflowVersion
from workflows.services import workflow_validate

FORMAT = "agentflow.workflow-export"
FORMAT_VERSION = 1
FORMATS = ("agentflow", "dify", "flowise")
CONVERTERS = {"dify": dify.convert, "flowise": flowise.convert}
SOURCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


class ImportRefused(Exception):
    """The document cannot be imported as it is; `field` names where (a JSON Pointer) and
    `status` is the answer's (409 for a conflict with what the tenant has, else 422)."""

    def __init__(
        self, field: str, message: str, status: int = 422, report: ImportReport | None = None
    ) -> None:
        super().__init__(message)
        self.field, self.status, self.report = field, status, report


class ImportInvalid(Exception):
    """A version or source does not validate for the tenant; `errors` as validation reports
    them, their paths inside the document."""

    def __init__(self, errors: list[dict[str, Any]], report: ImportReport | None = None) -> None:
        super().__init__(f"{len(errors)} problem(s) in the imported document")
        self.errors, self.report = errors, report


@dataclass
class Imported:
    workflow: Workflow
    format: str
    report: dict[str, Any] = field(default_factory=dict)


# --- export ------------------------------------------------------------------------------------


def _stored_refs(specs: list[dict[str, Any]]) -> list[str]:
    refs: list[str] = []
    for spec in specs:
        inline = {s.get("id") for s in spec.get("sources", []) if isinstance(s, dict)}
        for node in spec.get("nodes", []):
            ref = (node.get("metadata") or {}).get("source")
            if isinstance(ref, str) and ref not in inline and ref not in refs:
                refs.append(ref)
    return refs


def _stored_source(tenant: Tenant, ref: str) -> Source | None:
    """The tenant's source by id or name; a live one first (an old version may name one
    deleted since)."""
    rows = Source.objects.for_tenant(tenant).filter(Q(id=ref) | Q(name=ref))
    return rows.order_by("deleted_at", "-created_at").first()


def workflow_export(*, workflow: Workflow) -> dict[str, Any]:
    """The workflow, every version oldest first, and the stored sources they name (their
    configs name environment variables; no secret is in a config)."""
    versions = list(workflow.versions.order_by("version"))
    found = (_stored_source(workflow.tenant, r) for r in _stored_refs([v.spec for v in versions]))
    sources = {s.id: s for s in found if s is not None}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "workflow": {
            "id": workflow.id,
            "name": workflow.name,
            "description": workflow.description,
            "version": workflow.version,
            "created_at": workflow.created_at.isoformat(),
            "created_by": workflow.created_by,
        },
        "versions": [
            {
                "version": v.version,
                "spec": v.spec,
                "created_at": v.created_at.isoformat(),
                "created_by": v.created_by,
            }
            for v in versions
        ],
        "sources": [
            {
                "id": s.id,
                "name": s.name,
                "kind": s.kind,
                "config": s.config,
                "description": s.description,
            }
            for s in sources.values()
        ],
    }


# --- import ------------------------------------------------------------------------------------


def detect_format(document: Any) -> str:
    """`agentflow`, `dify` or `flowise`, from the document's own marks.

    Raises:
        ImportRefused: none of them.
    """
    if isinstance(document, dict) and document.get("format") == FORMAT:
        return "agentflow"
    if dify.is_dify(document):
        return "dify"
    if flowise.is_flowise(document):
        return "flowise"
    raise ImportRefused(
        "/format",
        "Not a document this server imports: an AgentFlow export (`format`: "
        f"{FORMAT!r}), a Dify DSL export (`app`, `workflow.graph`) or a Flowise chatflow "
        "(`nodes`, `edges`); or say which with ?format=agentflow|dify|flowise.",
    )


def workflow_import(
    *,
    tenant: Tenant,
    document: Any,
    actor: str,
    fmt: str | None = None,
    name: str | None = None,
    options: ImportOptions | None = None,
) -> Imported:
    """Create a workflow of `tenant` from an export document of `fmt` (detected when None).

    Raises:
        ImportRefused: the document is malformed, or conflicts with what the tenant has.
        ImportInvalid: a version (or a source) does not validate for the tenant.
        Nothing is written when either is raised.
    """
    fmt = fmt or detect_format(document)
    if fmt == "agentflow":
        return _import_export(tenant, _checked_export(document), actor, name)
    _need(isinstance(document, dict), "/document", f"A {fmt} export is an object.")
    try:
        conversion = CONVERTERS[fmt](document, options or ImportOptions())
    except NotConvertible as exc:
        raise ImportRefused(exc.field, str(exc)) from exc
    return _import_conversion(tenant, conversion, fmt, actor, name)


def _need(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise ImportRefused(where, message)


def _checked_export(document: Any) -> dict[str, Any]:
    _need(isinstance(document, dict), "", "An export document is a JSON object.")
    version = document.get("format_version")
    _need(version == FORMAT_VERSION, "/format_version", f"Only version {FORMAT_VERSION} imports.")
    versions = document.get("versions")
    _need(isinstance(versions, list) and bool(versions), "/versions", "No versions to import.")
    for i, v in enumerate(versions):
        _need(
            isinstance(v, dict) and isinstance(v.get("spec"), dict),
            f"/versions/{i}/spec",
            "Each version holds its spec, an object.",
        )
    sources = document.get("sources", [])
    _need(isinstance(sources, list), "/sources", "A list of the stored sources used.")
    for i, s in enumerate(sources):
        ok = isinstance(s, dict) and all(isinstance(s.get(k), str) for k in ("id", "name", "kind"))
        _need(
            ok and bool(SOURCE_NAME.match(s["name"])),
            f"/sources/{i}/name",
            "A source name: a letter, then up to 127 letters, digits, _ . or -.",
        )
        _need(len(s["kind"]) <= 32, f"/sources/{i}/kind", "Not a source kind.")
        _need(
            ok and isinstance(s.get("config"), dict),
            f"/sources/{i}",
            "Each source has an id, a name, a kind (strings) and a config (an object).",
        )
    return document


def _name_free(tenant: Tenant, name: str) -> None:
    if Workflow.objects.for_tenant(tenant).alive().filter(name=name).exists():
        raise ImportRefused(
            "/name",
            f"You already have a workflow named {name!r}; import it under another name "
            "(`name` in the body, or ?name=).",
            status=409,
        )


def _sources(
    tenant: Tenant, sources: list[dict[str, Any]], actor: str
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each exported source, reused when the tenant has it as it was, else created: (old id ->
    new id, what happened)."""
    ids: dict[str, str] = {}
    done: dict[str, list[str]] = {"sources_created": [], "sources_reused": []}
    for i, s in enumerate(sources):
        have = sources_of(tenant).filter(name=s["name"]).first()
        if have is not None and (have.kind, have.config) != (s["kind"], s["config"]):
            raise ImportRefused(
                f"/sources/{i}/config",
                f"You already have a source named {s['name']!r} with another kind or config; "
                "rename one of them or make the configs the same.",
                status=409,
            )
        if have is None:
            try:
                have = source_create(
                    tenant=tenant,
                    name=s["name"],
                    kind=s["kind"],
                    config=s["config"],
                    description=str(s.get("description") or ""),
                    actor=actor,
                )
            except SourceInvalid as exc:
                raise ImportInvalid(_within(f"/sources/{i}", exc.errors)) from exc
            done["sources_created"].append(have.id)
        else:
            done["sources_reused"].append(have.id)
        ids[s["id"]] = have.id
    return ids, done


def _within(prefix: str, errors: list[SpecError]) -> list[dict[str, Any]]:
    out = []
    for error in errors:
        item: dict[str, Any] = dict(error.to_dict())
        item["path"] = prefix + str(item.get("path") or "")
        out.append(item)
    return out


def _renamed(spec: dict[str, Any], name: str, source_ids: dict[str, str]) -> dict[str, Any]:
    """The spec under `name`, its nodes naming the tenant's copies of stored sources."""
    nodes = spec.get("nodes")
    if not isinstance(nodes, list):
        return {**spec, "name": name}  # the validator says what is wrong with it
    renamed = []
    for node in nodes:
        meta = node.get("metadata") if isinstance(node, dict) else None
        ref = meta.get("source") if isinstance(meta, dict) else None
        if isinstance(meta, dict) and isinstance(ref, str) and ref in source_ids:
            node = {**node, "metadata": {**meta, "source": source_ids[ref]}}
        renamed.append(node)
    return {**spec, "name": name, "nodes": renamed}


def _clean(tenant: Tenant, spec: dict[str, Any], where: str) -> dict[str, Any]:
    result = workflow_validate(spec=spec, tenant=tenant)
    if not result.valid or result.spec is None:
        raise ImportInvalid(_within(where, result.errors))
    return result.spec.model_dump(mode="json", by_alias=True, exclude_none=True)


@transaction.atomic
def _import_export(
    tenant: Tenant, document: dict[str, Any], actor: str, name: str | None
) -> Imported:
    versions = document["versions"]
    wanted = name or str(versions[-1]["spec"].get("name") or "")
    _need(bool(wanted), "/name", "Name the workflow.")
    _name_free(tenant, wanted)
    source_ids, done = _sources(tenant, document.get("sources", []), actor)
    specs = [
        _clean(tenant, _renamed(v["spec"], wanted, source_ids), f"/versions/{i}/spec")
        for i, v in enumerate(versions)
    ]
    workflow = _store(tenant, specs, actor)
    report = {**done, "versions": len(specs)}
    _audit(tenant, workflow, actor, "agentflow", report)
    return Imported(workflow, "agentflow", report)


@transaction.atomic
def _import_conversion(
    tenant: Tenant, conversion: Conversion, fmt: str, actor: str, name: str | None
) -> Imported:
    if not conversion.runnable:
        raise ImportRefused(
            "/",
            "Nothing runnable remains once the nodes that do not map are left out; see the report.",
            report=conversion.report,
        )
    spec = {**conversion.spec, "name": name or conversion.spec["name"]}
    _name_free(tenant, spec["name"])
    try:
        clean = _clean(tenant, spec, "/spec")
    except ImportInvalid as exc:
        exc.report = conversion.report
        raise
    workflow = _store(tenant, [clean], actor)
    report = conversion.report.to_dict()
    _audit(
        tenant,
        workflow,
        actor,
        fmt,
        {"mapped": len(report["mapped"]), "not_mapped": len(report["not_mapped"])},
    )
    return Imported(workflow, fmt, report)


def _store(tenant: Tenant, specs: list[dict[str, Any]], actor: str) -> Workflow:
    """The workflow with each spec as a version, in order; the last is the current one."""
    current = specs[-1]
    workflow = Workflow.objects.create(
        tenant=tenant,
        name=str(current["name"]),
        description=str(current.get("description") or ""),
        spec=current,
        version=len(specs),
        node_count=len(current["nodes"]),
        created_by=actor,
        updated_by=actor,
    )
    WorkflowVersion.objects.bulk_create(
        WorkflowVersion(workflow=workflow, version=n, spec=spec, created_by=actor)
        for n, spec in enumerate(specs, start=1)
    )
    return workflow


def _audit(
    tenant: Tenant, workflow: Workflow, actor: str, fmt: str, details: dict[str, object]
) -> None:
    audit_record(
        tenant=tenant,
        actor=actor,
        action="workflow.import",
        target_type="workflow",
        target_id=workflow.id,
        details={"version": workflow.version, "name": workflow.name, "format": fmt, **details},
    )
