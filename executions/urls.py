from django.urls import path, re_path

from executions.api import (
    FILE_NAME,
    ExecutionCancelApi,
    ExecutionDetailApi,
    ExecutionEventsApi,
    ExecutionFileApi,
    ExecutionListApi,
    StoredWorkflowExecuteApi,
    UsageApi,
    WorkflowExecuteApi,
    WorkflowExecutionsApi,
)
from executions.approval_api import ExecutionResumeApi
from executions.replay_api import ExecutionReplayApi
from executions.webhook_api import WebhookSecretApi

urlpatterns = [
    path("workflows/execute", WorkflowExecuteApi.as_view(), name="workflow-execute"),
    path(
        "workflows/<wf:workflow_id>/execute",
        StoredWorkflowExecuteApi.as_view(),
        name="workflow-execute-stored",
    ),
    path(
        "workflows/<wf:workflow_id>/executions",
        WorkflowExecutionsApi.as_view(),
        name="workflow-executions",
    ),
    path("executions", ExecutionListApi.as_view(), name="executions"),
    path("usage", UsageApi.as_view(), name="usage"),
    path("webhook-secret", WebhookSecretApi.as_view(), name="webhook-secret"),
    path("executions/<exec:execution_id>", ExecutionDetailApi.as_view(), name="execution-detail"),
    path(
        "executions/<exec:execution_id>/cancel",
        ExecutionCancelApi.as_view(),
        name="execution-cancel",
    ),
    path(
        "executions/<exec:execution_id>/resume",
        ExecutionResumeApi.as_view(),
        name="execution-resume",
    ),
    path(
        "executions/<exec:execution_id>/replay",
        ExecutionReplayApi.as_view(),
        name="execution-replay",
    ),
    path(
        "executions/<exec:execution_id>/events",
        ExecutionEventsApi.as_view(),
        name="execution-events",
    ),
    re_path(
        rf"^executions/(?P<execution_id>exec_[0-9a-f]+)/files/(?P<name>{FILE_NAME})$",
        ExecutionFileApi.as_view(),
        name="execution-file",
    ),
]
