import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_vary_headers
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    OpenApiTypes,
    extend_schema,
)
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from agentflow_site.errors import Conflict, InvalidSpec
from agentflow_site.params import query_number
from agentflow_site.parsers import BodyRefused, Refusal, refusal_in
from agentflow_site.schema import SPEC_REF
from runtime.errors import ErrorType, SpecError
from runtime.graph_render import PictureTooLarge
from runtime.jsonpos import locate
from runtime.plugins.registry import metadata_models as plugin_metadata_models
from runtime.spec import workflow_spec_json_schema
from runtime.validation import ValidationResult
from tenants.models import Role, Tenant
from workflows.diff import spec_diff
from workflows.estimate import workflow_estimate
from workflows.filters import WorkflowFilter
from workflows.models import Workflow, WorkflowVersion
from workflows.pictures import (
    DRAWERS,
    MermaidRenderer,
    PictureNegotiation,
    SvgRenderer,
    spec_picture,
)
from workflows.selectors import workflow_spec_at
from workflows.serializers import (
    ValidationResultSerializer,
    VersionDiffSerializer,
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
    workflow_restore,
    workflow_update,
    workflow_validate,
)

FLAG_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
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
    `{valid, errors, warnings}` for JSON; 400 for a body that is not JSON at all. With
    `?estimate=true` (a dry run) the answer also holds `estimate`: what a run of the spec from
    the body's `initial_state` may cost, counted without calling anything; null when the spec
    is not valid.
    """

    write_role = Role.VIEWER  # a POST, but it changes nothing
    body_required = ("post",)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "estimate",
                OpenApiTypes.BOOL,
                description="also estimate a run's tokens and cost (a dry run: nothing is "
                "called), from the body's `initial_state`",
            )
        ],
        request={
            "application/json": {
                "anyOf": [
                    SPEC_REF,
                    {
                        "type": "object",
                        "properties": {
                            "spec": SPEC_REF,
                            "node": {"type": "string"},
                            "initial_state": {
                                "type": "object",
                                "description": "the state the estimate renders prompts from, "
                                "as /workflows/execute takes it",
                            },
                        },
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
        wanted = _flag(request.query_params, "estimate")
        result, report = _checked_body(request, node_allowed=True)
        if wanted:
            state = _initial_state(request) if result is not None else {}
            report["estimate"] = workflow_estimate(validated=result, initial_state=state)
        return Response(report)


def _flag(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name, "false").strip().lower()
    if raw not in FLAG_VALUES:
        raise exceptions.ValidationError({name: ["Must be true or false."]})
    return FLAG_VALUES[raw]


def _initial_state(request: Request) -> dict[str, Any]:
    """The body's `initial_state` (`{}` when absent or the body is a bare spec)."""
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(body, dict) or "nodes" in body:
        return {}
    state = body.get("initial_state", {})
    if not isinstance(state, dict):
        raise exceptions.ValidationError({"initial_state": ["Must be a JSON object."]})
    return state


class WorkflowSpecSchemaApi(APIView):
    """The JSON Schema (draft 2020-12) of a WorkflowSpec, node metadata and source configs
    included, for editors and code generators. The node plugins this server enabled are in it
    too: each plugin type's metadata model (`$defs/plugin.<type>`)."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="workflow_spec_schema")
    def get(self, request: Request) -> Response:
        return Response(workflow_spec_json_schema(plugin_metadata_models()))


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


VERSION_MAX = 2**31 - 1
PICTURE_RESPONSES = {
    (200, SvgRenderer.media_type): OpenApiResponse(
        {"type": "string", "description": "an SVG document"},
        description="the workflow drawn top to bottom: nodes by type, conditions on edges, "
        "queues, loops with their bound, the start node",
    ),
    (200, MermaidRenderer.media_type): OpenApiResponse(
        {"type": "string", "description": "Mermaid `flowchart TD` text"},
        description="the same graph as Mermaid text, for docs",
    ),
}
FORMAT_PARAMETER = OpenApiParameter(
    "format",
    {"type": "string", "enum": list(DRAWERS)},
    description="`svg` (the default) or `mermaid`; or ask with `Accept: image/svg+xml` or "
    "`Accept: text/vnd.mermaid`",
)


def _picture_format(request: Request) -> str:
    wanted = request.query_params.get("format")
    if wanted is not None and wanted not in DRAWERS:
        raise exceptions.ValidationError({"format": [f"One of: {', '.join(DRAWERS)}."]})
    return str(request.accepted_renderer.format)


def _picture(spec: dict[str, Any], fmt: str) -> Response:
    try:
        response = Response(spec_picture(spec, fmt))
    except PictureTooLarge as exc:
        too_large = SpecError(ErrorType.SPEC_TOO_LARGE, str(exc), "")
        raise InvalidSpec([dict(too_large.to_dict())]) from exc
    patch_vary_headers(response, ("Accept",))  # the format may come from it
    return response


class _PictureApi(APIView):
    renderer_classes = (SvgRenderer, MermaidRenderer)
    content_negotiation_class = PictureNegotiation

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        response = super().options(request, *args, **kwargs)
        response.content_type = "application/json"  # the metadata is JSON, not a picture
        return response


class WorkflowGraphApi(_PictureApi):
    """A stored workflow's picture: SVG (default) or Mermaid text; `?version=` for a saved
    version. 422 for a workflow too large to draw."""

    problem_statuses = {"get": (422,)}

    @extend_schema(
        parameters=[
            FORMAT_PARAMETER,
            OpenApiParameter(
                "version",
                {"type": "integer", "minimum": 1, "maximum": VERSION_MAX},
                description="draw this saved version (default: the current one)",
            ),
        ],
        responses=PICTURE_RESPONSES,
        operation_id="workflows_graph",
        summary="Get a workflow's picture",
    )
    def get(self, request: Request, workflow_id: str) -> Response:
        fmt = _picture_format(request)
        workflow = workflow_of(principal_of(request).tenant, workflow_id)
        version = None
        if "version" in request.query_params:
            version = query_number(
                request.query_params, "version", default=1, low=1, high=VERSION_MAX
            )
        return _picture(workflow_spec_at(workflow, version), fmt)


class WorkflowGraphPreviewApi(_PictureApi):
    """Draw a spec that is not stored. It is validated as `POST /workflows/validate` does, with
    the same limits: one that is not valid is a 422 listing every problem."""

    write_role = Role.VIEWER  # a POST, but it changes nothing
    body_required = ("post",)
    problem_statuses = {"post": (422,)}

    @extend_schema(
        parameters=[FORMAT_PARAMETER],
        request={
            "application/json": {
                "anyOf": [
                    SPEC_REF,
                    {
                        "type": "object",
                        "properties": {"spec": SPEC_REF},
                        "required": ["spec"],
                    },
                ]
            }
        },
        responses=PICTURE_RESPONSES,
        examples=[OpenApiExample("a spec", value=SPEC_EXAMPLE, request_only=True)],
        operation_id="workflows_graph_preview",
        summary="Draw a workflow spec",
    )
    def post(self, request: Request) -> Response:
        fmt = _picture_format(request)
        return _picture(_valid_spec(request), fmt)


def _checked_body(request: Request, *, node_allowed: bool) -> tuple[Any, dict[str, Any]]:
    """The body's spec (bare or as `{"spec": …}`, with `node` to check one node when
    `node_allowed`) validated for the request's tenant: (the validation result, or None when
    the body was refused before validating it; the report /workflows/validate answers)."""
    try:
        raw = request.body
    except RequestDataTooBig:
        return None, _too_large(settings.AGENTFLOW_MAX_SPEC_BYTES)
    try:
        body = json.loads(raw)
    except RecursionError:
        body = None  # JSON, but nested too deep to parse here: the validator reports it
    except ValueError as exc:
        raise exceptions.ParseError(f"The body is not JSON: {exc}") from exc
    wrapped = isinstance(body, dict) and "spec" in body and "nodes" not in body
    refusal = refusal_in(body)  # nesting is the validator's to report, with its own bound
    if refusal is not None and refusal.kind != "depth":
        return None, _unstorable(refusal, raw, wrapped)
    tenant = principal_of(request).tenant
    if wrapped and isinstance(body, dict):
        node = body.get("node") if node_allowed else None
        if node is not None and not isinstance(node, str):
            raise exceptions.ValidationError({"node": ["Must be a node id (a string)."]})
        result = workflow_validate(spec=body["spec"], tenant=tenant, only_node=node)
        return result, positioned(result, raw, "/spec")
    result = workflow_validate(spec=raw, tenant=tenant)
    return result, result.to_dict()


def _valid_spec(request: Request) -> dict[str, Any]:
    """The body's spec, validated as /workflows/validate does.

    Raises:
        InvalidSpec: it is not valid (or too large); every problem, with line and column.
    """
    result, report = _checked_body(request, node_allowed=False)
    if result is None or not result.valid or result.spec is None:
        raise InvalidSpec(report["errors"])
    return result.spec.model_dump(mode="json", by_alias=True, exclude_none=True)


def _version_parameter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        {"type": "integer", "minimum": 1, "maximum": VERSION_MAX},
        OpenApiParameter.PATH,
        description=description,
    )


def _saved_spec(workflow: Workflow, version: int) -> dict[str, Any]:
    """Saved `version`'s spec; a number past any version is a 404 like a missing one."""
    if not 1 <= version <= VERSION_MAX:
        raise Http404(f"Workflow {workflow.id} has no version {version}.")
    return workflow_spec_at(workflow, version)


class WorkflowVersionDiffApi(APIView):
    """What changed from saved `version` to saved `to_version`: nodes, queues and inline
    sources by id (added, removed, changed with the fields that changed), edges by (from, to,
    condition), every other field by dotted path, and a JSON Patch (RFC 6902) that turns the
    first spec into the second. A version against itself is an empty diff."""

    @extend_schema(
        parameters=[
            _version_parameter("version", "the version compared (`from`)"),
            _version_parameter("to_version", "the version it is compared with (`to`)"),
        ],
        responses=VersionDiffSerializer,
        operation_id="workflows_versions_diff",
        summary="Compare two saved versions",
    )
    def get(self, request: Request, workflow_id: str, version: int, to_version: int) -> Response:
        workflow = workflow_of(principal_of(request).tenant, workflow_id)
        a, b = _saved_spec(workflow, version), _saved_spec(workflow, to_version)
        return Response({"from": version, "to": to_version, **spec_diff(a, b)})


class WorkflowVersionRestoreApi(APIView):
    """Make a saved version the current one again, as a new version (a developer's write). It
    is validated as a PUT is, against today's grants and sources: one that no longer validates
    is a 422 naming every problem. Restoring the current spec saves nothing new."""

    problem_statuses = {"post": (422,)}

    @extend_schema(
        parameters=[_version_parameter("version", "the saved version to restore")],
        request=None,
        responses=WorkflowDetailSerializer,
        operation_id="workflows_versions_restore",
        summary="Restore a saved version",
    )
    def post(self, request: Request, workflow_id: str, version: int) -> Response:
        principal = principal_of(request)
        workflow = workflow_of(principal.tenant, workflow_id)
        _saved_spec(workflow, version)  # an unknown version is a 404
        try:
            saved = workflow_restore(workflow=workflow, version=version, actor=principal.actor)
        except WorkflowVersion.DoesNotExist as exc:
            raise Http404(f"Workflow {workflow.id} has no version {version}.") from exc
        except WorkflowInvalid as exc:
            raise InvalidSpec(exc.result.to_dict()["errors"]) from exc
        return Response(WorkflowDetailSerializer(saved).data)
