"""Reads on stored workflows."""

from typing import Any

from django.http import Http404

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
