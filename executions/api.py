import mimetypes
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import Principal, principal_of
from agentflow_site.errors import InvalidSpec
from agentflow_site.pagination import NewestFirstCursorPagination
from executions.filters import ExecutionFilter
from executions.models import Execution, Status
from executions.serializers import (
    ExecuteRequestSerializer,
    ExecuteResponseSerializer,
    ExecutionListSerializer,
    ExecutionSerializer,
    StoredExecuteRequestSerializer,
)
from executions.services import execution_create, execution_run
from tenants.models import Role
from workflows.api import workflow_of
from workflows.models import Workflow
from workflows.services import workflow_validate

FILE_NAME = r"[0-9a-f]{16}\.(png|jpg|webp|bin)"


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


def _run(
    principal: Principal,
    spec: Any,
    body: dict[str, Any],
    workflow: Workflow | None = None,
    version: int | None = None,
) -> Response:
    validated = workflow_validate(spec=spec, tenant=principal.tenant)
    if not validated.valid:
        raise InvalidSpec([dict(e.to_dict()) for e in validated.errors])
    execution = execution_create(
        tenant=principal.tenant,
        validated=validated,
        initial_state=body["initial_state"],
        timeout_seconds=body.get("timeout_seconds", settings.AGENTFLOW_SYNC_TIMEOUT),
        created_by=principal.actor,
        workflow=workflow,
        workflow_version=version,
    )
    execution = execution_run(execution_id=execution.id, validated=validated)
    return Response(execute_response(execution))


class WorkflowExecuteApi(APIView):
    """Validate a spec and run it at once (`mode: sync`), answering with its final state."""

    write_role = Role.EXECUTOR

    @extend_schema(
        request=ExecuteRequestSerializer,
        responses=ExecuteResponseSerializer,
        operation_id="workflows_execute",
    )
    def post(self, request: Request) -> Response:
        body = ExecuteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _run(principal_of(request), body.validated_data["workflow"], body.validated_data)


class StoredWorkflowExecuteApi(APIView):
    """Run a stored workflow: its current version, or the `version` named."""

    write_role = Role.EXECUTOR

    @extend_schema(
        request=StoredExecuteRequestSerializer,
        responses=ExecuteResponseSerializer,
        operation_id="workflows_execute_stored",
    )
    def post(self, request: Request, workflow_id: str) -> Response:
        principal = principal_of(request)
        workflow = workflow_of(principal.tenant, workflow_id)
        body = StoredExecuteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = body.validated_data.get("version") or workflow.version
        saved = workflow.versions.filter(version=version).first()
        if saved is None:
            raise exceptions.ValidationError(
                {"version": [f"Workflow {workflow.id} has versions 1 to {workflow.version}."]}
            )
        return _run(principal, saved.spec, body.validated_data, workflow, version)


class ExecutionListApi(ListAPIView[Execution]):
    """The tenant's executions, newest first (cursor pagination), filtered by status,
    workflow and creation time."""

    serializer_class = ExecutionListSerializer
    queryset = Execution.objects.none()  # for the schema; get_queryset scopes to the tenant
    pagination_class = NewestFirstCursorPagination
    filter_backends = (DjangoFilterBackend,)
    filterset_class = ExecutionFilter

    def get_queryset(self) -> QuerySet[Execution]:
        tenant = principal_of(self.request).tenant
        named = self.request.query_params.get("workflow")
        if named and not Workflow.objects.for_tenant(tenant).filter(pk=named).exists():
            raise exceptions.NotFound(f"No workflow {named}.")
        return Execution.objects.for_tenant(tenant)


class WorkflowExecutionsApi(ListAPIView[Execution]):
    """The executions of one stored workflow, newest first."""

    serializer_class = ExecutionListSerializer
    queryset = Execution.objects.none()  # for the schema; get_queryset scopes to the tenant
    pagination_class = NewestFirstCursorPagination
    filter_backends = (DjangoFilterBackend,)
    filterset_class = ExecutionFilter

    def get_queryset(self) -> QuerySet[Execution]:
        workflow = workflow_of(principal_of(self.request).tenant, self.kwargs["workflow_id"])
        return workflow.executions.all()


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
