from django.urls import path

from workflows.api import WorkflowSpecSchemaApi, WorkflowValidateApi

urlpatterns = [
    path("workflows/validate", WorkflowValidateApi.as_view(), name="workflow-validate"),
    path("schema/workflow-spec", WorkflowSpecSchemaApi.as_view(), name="workflow-spec-schema"),
]
