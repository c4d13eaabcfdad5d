"""Writes on stored sources."""

from typing import Any

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from runtime.errors import SpecError
from runtime.validation import ValidationOptions, validate_source
from sources.models import Source, SourceVersion
from tenants.models import Tenant
from tenants.selectors import tenant_grants
from tenants.services import audit_record


class SourceInvalid(Exception):
    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__(f"{len(errors)} problem(s) in the source")
        self.errors = errors


class SourceInUse(Exception):
    """A stored workflow names the source."""


def _check(tenant: Tenant, source_id: str, kind: Any, config: Any) -> None:
    options = ValidationOptions(grants=tenant_grants(tenant))
    errors = validate_source({"id": source_id, "kind": kind, "config": config}, options)
    if errors:
        raise SourceInvalid(errors)


def source_problems(source: Source) -> list[SpecError]:
    """What is wrong with a stored source under the tenant's grants as they are now (an
    operator may have withdrawn a variable since the source was saved)."""
    options = ValidationOptions(grants=tenant_grants(source.tenant))
    spec = {"id": source.name, "kind": source.kind, "config": source.config}
    return validate_source(spec, options)


def _name_taken(tenant: Tenant, name: str, but: str | None = None) -> bool:
    others = Source.objects.for_tenant(tenant).alive().filter(name=name)
    return others.exclude(pk=but).exists() if but else others.exists()


def _duplicate(name: str) -> SourceInvalid:
    message = f"A source named {name!r} already exists; pick another name or edit that one."
    return SourceInvalid([SpecError("duplicate_id", message, "/name", None)])


@transaction.atomic
def source_create(
    *, tenant: Tenant, name: str, kind: str, config: dict[str, Any], description: str, actor: str
) -> Source:
    """Validate and store a source (version 1).

    Raises:
        SourceInvalid: the kind or config is wrong, holds a secret, or names a variable the
            tenant was not granted; or the name is taken.
    """
    _check(tenant, name, kind, config)
    if _name_taken(tenant, name):
        raise _duplicate(name)
    source = Source.objects.create(
        tenant=tenant,
        name=name,
        kind=kind,
        config=config,
        description=description,
        created_by=actor,
        updated_by=actor,
    )
    SourceVersion.objects.create(
        source=source, version=1, kind=kind, config=config, created_by=actor
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="source.create",
        target_type="source",
        target_id=source.id,
        details={"name": name, "kind": kind},
    )
    return source


@transaction.atomic
def source_update(*, source: Source, changes: dict[str, Any], actor: str) -> Source:
    """Apply changes (name, kind, config, description); a new version when kind or config
    changed.

    Raises:
        SourceInvalid: as for source_create; nothing is changed.
        SourceInUse: a rename or a change of kind while a stored workflow names the source
            (its runs would stop finding it, or get a source of the wrong kind).
    """
    locked = Source.objects.select_for_update().get(pk=source.pk)
    name = changes.get("name", locked.name)
    kind = changes.get("kind", locked.kind)
    config = changes.get("config", locked.config)
    _check(locked.tenant, name, kind, config)
    if (name, kind) != (locked.name, locked.kind) and (using := workflows_using(locked)):
        what = "rename" if name != locked.name else "change the kind of"
        raise SourceInUse(
            f"Cannot {what} source {locked.name!r}: workflow(s) {', '.join(using)} use it. "
            "Point them at another source first."
        )
    if name != locked.name and _name_taken(locked.tenant, name, but=locked.pk):
        raise _duplicate(name)
    if (kind, config) != (locked.kind, locked.config):
        locked.version += 1
        SourceVersion.objects.create(
            source=locked, version=locked.version, kind=kind, config=config, created_by=actor
        )
    locked.name, locked.kind, locked.config = name, kind, config
    locked.description = changes.get("description", locked.description)
    locked.updated_by = actor
    locked.save()
    audit_record(
        tenant=locked.tenant,
        actor=actor,
        action="source.update",
        target_type="source",
        target_id=locked.id,
        details={"version": locked.version},
    )
    return locked


def workflows_using(source: Source) -> list[str]:
    """Ids of the tenant's live stored workflows whose nodes name this source (by id or name)
    without an inline source of that name."""
    # workflows sits above sources; the model is looked up by name to keep imports one-way.
    workflow_model = apps.get_model("workflows", "Workflow")
    names = {source.id, source.name}
    using = []
    for workflow in workflow_model.objects.for_tenant(source.tenant).alive().only("id", "spec"):
        spec = workflow.spec
        inline = {s.get("id") for s in spec.get("sources", [])}
        refs = {(n.get("metadata") or {}).get("source") for n in spec.get("nodes", [])}
        if (refs - inline) & names:
            using.append(workflow.id)
    return using


@transaction.atomic
def source_delete(*, source: Source, actor: str) -> None:
    """Soft-delete; refused while a stored workflow uses the source.

    Raises:
        SourceInUse: a live stored workflow names it.
    """
    using = workflows_using(source)
    if using:
        raise SourceInUse(
            f"Source {source.name!r} is used by workflow(s) {', '.join(using)}; change them "
            "to another source first."
        )
    source.deleted_at = timezone.now()
    source.deleted_by = actor
    source.save(update_fields=["deleted_at", "deleted_by", "updated_at"])
    audit_record(
        tenant=source.tenant,
        actor=actor,
        action="source.delete",
        target_type="source",
        target_id=source.id,
    )
