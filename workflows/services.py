"""Writes on stored workflows, and validation as the API and the CLI use it."""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from runtime.plugins.registry import metadata_models as plugin_metadata_models
from runtime.spec import SourceSpec
from runtime.validation import ValidationOptions, ValidationResult, validate_spec
from sources.selectors import source_resolver
from tenants.models import Tenant
from tenants.selectors import tenant_grants
from tenants.services import audit_record
from workflows.cache import cached_validation
from workflows.models import Workflow, WorkflowVersion
from workflows.selectors import workflow_resolver

ACTIVE_EXECUTIONS = ("queued", "running", "waiting")


class WorkflowInvalid(Exception):
    """The spec did not validate; `result` holds every problem."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__(f"{len(result.errors)} problem(s) in the workflow spec")
        self.result = result


class WorkflowBusy(Exception):
    """The workflow has queued or running executions."""


def validation_options(*, tenant: Tenant | None, only_node: str | None = None) -> ValidationOptions:
    """The operator's limits and the tenant's grants and stored sources."""
    return ValidationOptions(
        max_bytes=settings.AGENTFLOW_MAX_SPEC_BYTES,
        max_nodes=settings.AGENTFLOW_MAX_SPEC_NODES,
        max_steps=settings.AGENTFLOW_MAX_STEPS,
        grants=tenant_grants(tenant) if tenant is not None else None,
        resolve_source=source_resolver(tenant) if tenant is not None else None,
        node_types=plugin_metadata_models(),
        only_node=only_node,
        resolve_workflow=workflow_resolver(tenant) if tenant is not None else None,
        max_workflow_depth=settings.AGENTFLOW_MAX_WORKFLOW_DEPTH,
    )


def workflow_validate(
    *,
    spec: Any,
    tenant: Tenant | None,
    only_node: str | None = None,
    workflow: Workflow | None = None,
) -> ValidationResult:
    """Validate a spec (parsed JSON, or JSON text for line/column) for a tenant; a result
    validated before under the same grants, settings and stored sources is reused
    (workflows/cache.py). `workflow`: the stored workflow the spec is a new version of (its
    `workflow` nodes may not call it back)."""
    path = ((workflow.id, workflow.name),) if workflow is not None else ()

    def validate(resolve: Callable[[str], SourceSpec | None] | None) -> ValidationResult:
        options = validation_options(tenant=tenant, only_node=only_node)
        return validate_spec(spec, replace(options, resolve_source=resolve, workflow_path=path))

    return cached_validation(spec=spec, tenant=tenant, only_node=only_node, validate=validate)


def _checked(
    tenant: Tenant, spec: Any, workflow: Workflow | None = None
) -> tuple[ValidationResult, dict[str, Any]]:
    result = workflow_validate(spec=spec, tenant=tenant, workflow=workflow)
    if not result.valid or result.spec is None:
        raise WorkflowInvalid(result)
    return result, result.spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def _apply(workflow: Workflow, spec: dict[str, Any]) -> None:
    workflow.spec = spec
    workflow.name = str(spec["name"])
    workflow.description = str(spec.get("description") or "")
    workflow.node_count = len(spec["nodes"])


@transaction.atomic
def workflow_create(*, tenant: Tenant, spec: Any, actor: str) -> Workflow:
    """Validate and store a new workflow as version 1.

    Raises:
        WorkflowInvalid: the spec has errors; nothing is stored.
    """
    _, clean = _checked(tenant, spec)
    workflow = Workflow(tenant=tenant, created_by=actor, updated_by=actor)
    _apply(workflow, clean)
    workflow.save()
    WorkflowVersion.objects.create(workflow=workflow, version=1, spec=clean, created_by=actor)
    audit_record(
        tenant=tenant,
        actor=actor,
        action="workflow.create",
        target_type="workflow",
        target_id=workflow.id,
        details={"version": 1, "name": workflow.name},
    )
    return workflow


@transaction.atomic
def workflow_update(
    *, workflow: Workflow, actor: str, spec: Any = None, patch: Any = None
) -> Workflow:
    """Validate and save a new version from a whole `spec` or a JSON Merge Patch applied to the
    current one; an unchanged spec saves nothing new.

    The patch is applied under the row lock, to the spec as it is then: two PATCHes at once
    both land, one version each, neither losing the other.

    Raises:
        WorkflowInvalid: the spec has errors; the workflow is left as it was.
    """
    locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
    new_spec = merge_patch(locked.spec, patch) if patch is not None else spec
    return _save_version(locked, new_spec, actor, "workflow.update", {})


@transaction.atomic
def workflow_restore(*, workflow: Workflow, version: int, actor: str) -> Workflow:
    """Make saved `version` the current spec again, as a new version, validated as an update
    is (against today's grants and sources); restoring the current spec saves nothing new.

    Raises:
        WorkflowVersion.DoesNotExist: the workflow has no such version.
        WorkflowInvalid: that version no longer validates; the workflow is left as it was.
    """
    locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
    spec = locked.versions.get(version=version).spec
    return _save_version(locked, spec, actor, "workflow.restore", {"restored": version})


def _save_version(
    locked: Workflow, spec: Any, actor: str, action: str, details: dict[str, Any]
) -> Workflow:
    """Validate `spec` and save it as the next version of the locked workflow, audited."""
    _, clean = _checked(locked.tenant, spec, locked)
    if clean == locked.spec:
        return locked
    locked.version += 1
    locked.updated_by = actor
    _apply(locked, clean)
    locked.save()
    WorkflowVersion.objects.create(
        workflow=locked, version=locked.version, spec=clean, created_by=actor
    )
    audit_record(
        tenant=locked.tenant,
        actor=actor,
        action=action,
        target_type="workflow",
        target_id=locked.id,
        details={"version": locked.version, **details},
    )
    return locked


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch: objects merge, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@transaction.atomic
def workflow_delete(*, workflow: Workflow, actor: str) -> None:
    """Soft-delete; refused while an execution of the workflow is queued or running.

    Raises:
        WorkflowBusy: an execution is still queued or running.
    """
    locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
    active = locked.executions.filter(status__in=ACTIVE_EXECUTIONS)
    if active.exists():
        raise WorkflowBusy(
            f"Workflow {locked.id} has {active.count()} queued or running execution(s); "
            "cancel them or wait for them to finish, then delete it."
        )
    locked.deleted_at = timezone.now()
    locked.deleted_by = actor
    locked.status = Workflow.Status.DELETED
    locked.save(update_fields=["deleted_at", "deleted_by", "status", "updated_at"])
    audit_record(
        tenant=locked.tenant,
        actor=actor,
        action="workflow.delete",
        target_type="workflow",
        target_id=locked.id,
    )
