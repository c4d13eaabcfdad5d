"""Reads on stored workflows."""

from typing import Any

from django.http import Http404

from runtime.validation_workflows import StoredWorkflow, WorkflowResolver
from tenants.models import Tenant
from workflows.models import Workflow


def workflow_spec_at(workflow: Workflow, version: int | None) -> dict[str, Any]:
    """The spec of `version` of the workflow, or its current spec when `version` is None.

    Raises:
        Http404: the workflow has no such version.
    """
    if version is None:
        return dict(workflow.spec)
    found = workflow.versions.filter(version=version).values_list("spec", flat=True).first()
    if found is None:
        raise Http404(f"Workflow {workflow.id} has no version {version}.")
    return dict(found)


def workflow_resolver(tenant: Tenant) -> WorkflowResolver:
    """Find the tenant's live stored workflow by id, else by name (the newest of that name), at
    a version or its current one; another tenant's or a deleted workflow is not found."""

    def resolve(ref: str, version: int | None) -> StoredWorkflow | None:
        rows = Workflow.objects.for_tenant(tenant).alive()
        found = rows.filter(id=ref).first() or rows.filter(name=ref).order_by("-created_at").first()
        if found is None:
            return None
        if version is None or version == found.version:
            return StoredWorkflow(found.id, found.name, found.version, found.version, found.spec)
        spec = found.versions.filter(version=version).values_list("spec", flat=True).first()
        return StoredWorkflow(found.id, found.name, version, found.version, spec)

    return resolve
