import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiExample, OpenApiTypes, extend_schema
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from agentflow_site.errors import Conflict, InvalidSpec
from agentflow_site.parsers import BodyRefused, Refusal, refusal_in
from agentflow_site.schema import SPEC_REF
from runtime.errors import ErrorType, SpecError
from runtime.jsonpos import locate
from runtime.spec import workflow_spec_json_schema
from runtime.validation import ValidationResult
from tenants.models import Role, Tenant
from workflows.filters import WorkflowFilter
from workflows.models import Workflow, WorkflowVersion
from workflows.serializers import (
    ValidationResultSerializer,
    WorkflowDetailSerializer,
    WorkflowPatchSerializer,
    WorkflowSerializer,
    WorkflowVersionSerializer,
    WorkflowWriteSerializer,
)
from workflows.services import (
    WorkflowBusy,
    WorkflowInvalid,
    workflow_create,
    workflow_delete,
    workflow_update,
    workflow_validate,
)

SPEC_EXAMPLE = {
    "name": "hello",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "answer",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "You said: {{ user_input }}"},
        },
    ],
    "edges": [{"from": "input", "to": "answer"}],
}


def _too_large(limit: int) -> dict[str, Any]:
    message = f"The spec is larger than the {limit:,}-byte limit; split it into smaller workflows."
    problem = SpecError("spec_too_large", message, "")
    return {"valid": False, "errors": [problem.to_dict()], "warnings": []}


def positioned(result: ValidationResult, body: bytes, prefix: str) -> dict[str, Any]:
    """The result with line/column of each problem in the request body, where the spec sits at
    `prefix` (`/spec` for `{"spec": …}` bodies)."""
    report = result.to_dict()
    problems = [*report["errors"], *report["warnings"]]
    try:
        where = locate(body.decode("utf-8", "replace"), {prefix + p["path"] for p in problems})
    except (ValueError, RecursionError):
        return report
    for p in problems:
        p["line"], p["column"] = where.get(prefix + p["path"], (None, None))
    return report


def _unstorable(refusal: Refusal, body: bytes, wrapped: bool) -> dict[str, Any]:
    """A spec holding text or a number no database stores is not valid: saving it would fail."""
    if wrapped and refusal.path[:1] != ("spec",):
        raise BodyRefused(refusal)  # in `node`, beside the spec
    path = refusal.path[1:] if wrapped else refusal.path
    pointer = Refusal(path, refusal.message, refusal.kind).pointer
    try:
        where = locate(body.decode("utf-8", "replace"), {refusal.pointer})
    except (ValueError, RecursionError):
        where = {}
    line, column = where.get(refusal.pointer, (None, None))
    error = SpecError(ErrorType.SCHEMA, refusal.message, pointer, None, line, column)
    return {"valid": False, "errors": [error.to_dict()], "warnings": []}


def invalid(exc: WorkflowInvalid, request: Request) -> InvalidSpec:
    return InvalidSpec(positioned(exc.result, request.body, "/spec")["errors"])


def spec_body(request: Request, serializer: type[WorkflowWriteSerializer]) -> dict[str, Any]:
    """The checked `{"spec": …}` body; one too big to read is the validator's spec_too_large."""
    try:
        data = request.data
    except RequestDataTooBig as exc:
        raise InvalidSpec(_too_large(settings.AGENTFLOW_MAX_SPEC_BYTES)["errors"]) from exc
    body = serializer(data=data)
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def workflow_of(tenant: Tenant, workflow_id: str) -> Workflow:
    return get_object_or_404(Workflow.objects.for_tenant(tenant).alive(), pk=workflow_id)


class WorkflowValidateApi(APIView):
    """Validate a WorkflowSpec and report every problem at once (any role may validate).

    The body is a spec, or `{"spec": …, "node": id}` to check one node. Always 200 with
    `{valid, errors, warnings}` for JSON; 400 for a body that is not JSON at all.
    """

    write_role = Role.VIEWER  # a POST, but it changes nothing
    body_required = ("post",)

    @extend_schema(
        request={
            "application/json": {
                "anyOf": [
                    SPEC_REF,
                    {
                        "type": "object",
                        "properties": {"spec": SPEC_REF, "node": {"type": "string"}},
                        "required": ["spec"],
                    },
                ]
            }
        },
        responses=ValidationResultSerializer,
        examples=[OpenApiExample("a spec", value=SPEC_EXAMPLE, request_only=True)],
        operation_id="workflows_validate",
    )
    def post(self, request: Request) -> Response:
        try:
            raw = request.body
        except RequestDataTooBig:
            return Response(_too_large(settings.AGENTFLOW_MAX_SPEC_BYTES))
        try:
            body = json.loads(raw)
        except RecursionError:
            body = None  # JSON, but nested too deep to parse here: the validator reports it
        except ValueError as exc:
            raise exceptions.ParseError(f"The body is not JSON: {exc}") from exc
        tenant = principal_of(request).tenant
        wrapped = isinstance(body, dict) and "spec" in body and "nodes" not in body
        refusal = refusal_in(body)  # nesting is the validator's to report, with its own bound
        if refusal is not None and refusal.kind != "depth":
            return Response(_unstorable(refusal, raw, wrapped))
        if wrapped and isinstance(body, dict):
            node = body.get("node")
            if node is not None and not isinstance(node, str):
                raise exceptions.ValidationError({"node": ["Must be a node id (a string)."]})
            result = workflow_validate(spec=body["spec"], tenant=tenant, only_node=node)
            return Response(positioned(result, raw, "/spec"))
        return Response(workflow_validate(spec=raw, tenant=tenant).to_dict())


class WorkflowSpecSchemaApi(APIView):
    """The JSON Schema (draft 2020-12) of a WorkflowSpec, node metadata and source configs
    included, for editors and code generators."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="workflow_spec_schema")
    def get(self, request: Request) -> Response:
        return Response(workflow_spec_json_schema())


class WorkflowListCreateApi(ListAPIView[Workflow]):
    """The tenant's stored workflows (newest first; `?status=deleted` lists deleted ones).
    POST validates and stores a new one (422 with every problem when it is not valid)."""

    problem_statuses = {"post": (422,)}
    serializer_class = WorkflowSerializer
    queryset = Workflow.objects.none()  # for the schema; get_queryset scopes to the tenant
    filter_backends = (DjangoFilterBackend,)
    filterset_class = WorkflowFilter

    def get_queryset(self) -> QuerySet[Workflow]:
        workflows = Workflow.objects.for_tenant(principal_of(self.request).tenant)
        if self.request.query_params.get("status") == Workflow.Status.DELETED:
            return workflows
        return workflows.alive()

    @extend_schema(request=WorkflowWriteSerializer, responses={201: WorkflowDetailSerializer})
    def post(self, request: Request) -> Response:
        body = spec_body(request, WorkflowWriteSerializer)
        principal = principal_of(request)
        try:
            workflow = workflow_create(
                tenant=principal.tenant, spec=body["spec"], actor=principal.actor
            )
        except WorkflowInvalid as exc:
            raise invalid(exc, request) from exc
        headers = {"Location": f"/api/v1/workflows/{workflow.id}"}
        data = WorkflowDetailSerializer(workflow).data
        return Response(data, status=status.HTTP_201_CREATED, headers=headers)


class WorkflowDetailApi(APIView):
    """One stored workflow with its current spec. PUT saves a new spec; PATCH applies a JSON
    Merge Patch to it; each change is a new version. DELETE is soft, and refused (409) while
    an execution of it is queued or running."""

    problem_statuses = {"put": (422,), "patch": (422,), "delete": (409,)}
    body_required = ("patch",)

    @extend_schema(responses=WorkflowDetailSerializer, operation_id="workflows_retrieve")
    def get(self, request: Request, workflow_id: str) -> Response:
        workflow = workflow_of(principal_of(request).tenant, workflow_id)
        return Response(WorkflowDetailSerializer(workflow).data)

    @extend_schema(request=WorkflowWriteSerializer, responses=WorkflowDetailSerializer)
    def put(self, request: Request, workflow_id: str) -> Response:
        workflow_of(principal_of(request).tenant, workflow_id)  # an unknown id is a 404 first
        body = spec_body(request, WorkflowWriteSerializer)
        return self._save(request, workflow_id, spec=body["spec"])

    @extend_schema(
        request={
            "application/json": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "description": "a JSON Merge Patch (RFC 7386) of the current spec",
                    }
                },
                "required": ["spec"],
            }
        },
        responses=WorkflowDetailSerializer,
    )
    def patch(self, request: Request, workflow_id: str) -> Response:
        workflow_of(principal_of(request).tenant, workflow_id)  # an unknown id is a 404 first
        body = spec_body(request, WorkflowPatchSerializer)
        return self._save(request, workflow_id, patch=body["spec"])

    @extend_schema(responses={204: None})
    def delete(self, request: Request, workflow_id: str) -> Response:
        principal = principal_of(request)
        workflow = workflow_of(principal.tenant, workflow_id)
        try:
            workflow_delete(workflow=workflow, actor=principal.actor)
        except WorkflowBusy as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _save(
        self, request: Request, workflow_id: str, *, spec: Any = None, patch: Any = None
    ) -> Response:
        principal = principal_of(request)
        workflow = workflow_of(principal.tenant, workflow_id)
        try:
            saved = workflow_update(
                workflow=workflow, spec=spec, patch=patch, actor=principal.actor
            )
        except WorkflowInvalid as exc:
            raise invalid(exc, request) from exc
        return Response(WorkflowDetailSerializer(saved).data)


class WorkflowVersionsApi(ListAPIView[WorkflowVersion]):
    """Every saved version of a workflow, newest first, with who saved it and when."""

    serializer_class = WorkflowVersionSerializer

    def get_queryset(self) -> QuerySet[WorkflowVersion]:
        workflow = workflow_of(principal_of(self.request).tenant, self.kwargs["workflow_id"])
        return workflow.versions.all()
