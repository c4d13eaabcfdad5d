from django.urls import path, re_path

from executions.api import FILE_NAME, ExecutionDetailApi, ExecutionFileApi, WorkflowExecuteApi

urlpatterns = [
    path("workflows/execute", WorkflowExecuteApi.as_view(), name="workflow-execute"),
    path("executions/<str:execution_id>", ExecutionDetailApi.as_view(), name="execution-detail"),
    re_path(
        rf"^executions/(?P<execution_id>exec_[0-9a-f]+)/files/(?P<name>{FILE_NAME})$",
        ExecutionFileApi.as_view(),
        name="execution-file",
    ),
]
