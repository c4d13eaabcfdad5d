import mimetypes
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from executions.models import Execution, Status
from executions.serializers import (
    ExecuteRequestSerializer,
    ExecuteResponseSerializer,
    ExecutionSerializer,
)
from executions.services import execution_create, execution_run
from runtime.validation import ValidationResult
from tenants.models import Role
from workflows.services import workflow_validate

FILE_NAME = r"[0-9a-f]{16}\.(png|jpg|webp|bin)"


class InvalidWorkflow(exceptions.APIException):
    """422 with the validation errors in `errors`, as /workflows/validate reports them."""

    status_code = 422
    default_detail = "The workflow is not valid."
    default_code = "invalid_workflow"

    def __init__(self, validated: ValidationResult) -> None:
        count = len(validated.errors)
        first = validated.errors[0].message if validated.errors else ""
        super().__init__(f"The workflow has {count} problem(s); the first: {first}")
        self.errors = [e.to_dict() for e in validated.errors]


def execute_response(execution: Execution) -> dict[str, Any]:
    shown = "success" if execution.status == Status.SUCCEEDED else execution.status
    return {
        "status": shown,
        "execution_id": execution.id,
        "final_state": execution.final_state,
        "execution_time": execution.execution_time,
        "tokens_used": execution.tokens_used,
        "cost": float(execution.cost),
        "error": execution.error,
    }


class WorkflowExecuteApi(APIView):
    """Validate a spec and run it at once (`mode: sync`), answering with its final state."""

    write_role = Role.EXECUTOR

    @extend_schema(
        request=ExecuteRequestSerializer,
        responses={200: ExecuteResponseSerializer, 422: OpenApiResponse(description="invalid")},
        operation_id="workflows_execute",
    )
    def post(self, request: Request) -> Response:
        body = ExecuteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        principal = principal_of(request)
        validated = workflow_validate(spec=body.validated_data["workflow"], tenant=principal.tenant)
        if not validated.valid:
            raise InvalidWorkflow(validated)
        timeout = body.validated_data.get("timeout_seconds", settings.AGENTFLOW_SYNC_TIMEOUT)
        execution = execution_create(
            tenant=principal.tenant,
            validated=validated,
            initial_state=body.validated_data["initial_state"],
            timeout_seconds=timeout,
            created_by=principal.api_key.prefix,
        )
        execution = execution_run(execution_id=execution.id, validated=validated)
        return Response(execute_response(execution), status=status.HTTP_200_OK)


class ExecutionDetailApi(APIView):
    """An execution: status, initial and final state, and the per-node trace."""

    @extend_schema(responses=ExecutionSerializer, operation_id="executions_retrieve")
    def get(self, request: Request, execution_id: str) -> Response:
        tenant = principal_of(request).tenant
        execution = get_object_or_404(
            Execution.objects.for_tenant(tenant).prefetch_related("node_runs"), pk=execution_id
        )
        return Response(ExecutionSerializer(execution).data)


class ExecutionFileApi(APIView):
    """A file a run produced (a generated image), readable only by the run's tenant."""

    @extend_schema(responses={(200, "image/*"): bytes}, operation_id="executions_file")
    def get(self, request: Request, execution_id: str, name: str) -> FileResponse:
        tenant = principal_of(request).tenant
        execution = get_object_or_404(Execution.objects.for_tenant(tenant), pk=execution_id)
        path = f"executions/{execution.tenant_id}/{execution.id}/{name}"
        if not default_storage.exists(path):
            raise exceptions.NotFound()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return FileResponse(default_storage.open(path), content_type=content_type)
