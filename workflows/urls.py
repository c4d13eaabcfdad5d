from django.urls import path

from workflows.api import (
    WorkflowDetailApi,
    WorkflowGraphApi,
    WorkflowGraphPreviewApi,
    WorkflowListCreateApi,
    WorkflowSpecSchemaApi,
    WorkflowValidateApi,
    WorkflowVersionDiffApi,
    WorkflowVersionRestoreApi,
    WorkflowVersionsApi,
)
from workflows.transfer_api import WorkflowExportApi, WorkflowImportApi

urlpatterns = [
    path("workflows", WorkflowListCreateApi.as_view(), name="workflows"),
    path("workflows/validate", WorkflowValidateApi.as_view(), name="workflow-validate"),
    path("workflows/graph", WorkflowGraphPreviewApi.as_view(), name="workflow-graph-preview"),
    path("workflows/import", WorkflowImportApi.as_view(), name="workflow-import"),
    path("workflows/<wf:workflow_id>", WorkflowDetailApi.as_view(), name="workflow-detail"),
    path("workflows/<wf:workflow_id>/graph", WorkflowGraphApi.as_view(), name="workflow-graph"),
    path("workflows/<wf:workflow_id>/export", WorkflowExportApi.as_view(), name="workflow-export"),
    path(
        "workflows/<wf:workflow_id>/versions",
        WorkflowVersionsApi.as_view(),
        name="workflow-versions",
    ),
    path(
        "workflows/<wf:workflow_id>/versions/<int:version>/diff/<int:to_version>",
        WorkflowVersionDiffApi.as_view(),
        name="workflow-version-diff",
    ),
    path(
        "workflows/<wf:workflow_id>/versions/<int:version>/restore",
        WorkflowVersionRestoreApi.as_view(),
        name="workflow-version-restore",
    ),
    path("schema/workflow-spec", WorkflowSpecSchemaApi.as_view(), name="workflow-spec-schema"),
]
