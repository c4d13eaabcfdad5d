import hashlib
import json
import mimetypes
import time
from typing import Any

import structlog
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import Principal, principal_of
from agentflow_site.bounds import column_max
from agentflow_site.errors import Conflict, FieldRefused, InvalidSpec, RunInterrupted
from agentflow_site.observability.errors import capture_exception
from agentflow_site.pagination import NewestFirstCursorPagination
from agentflow_site.params import query_number, whole_number
from agentflow_site.renderers import EventStreamRenderer
from executions.events import event_stream
from executions.filters import ExecutionFilter
from executions.models import FINISHED, Execution, ExecutionEvent, Status
from executions.selectors import usage_report
from executions.serializers import (
    ExecuteAcceptedSerializer,
    ExecuteRequestSerializer,
    ExecuteResponseSerializer,
    ExecutionListSerializer,
    ExecutionSerializer,
    StoredExecuteRequestSerializer,
)
from executions.services import (
    ExecutionCrashed,
    ExecutionFinished,
    execution_cancel,
    execution_create,
    execution_run,
)
from executions.tasks import enqueue_run
from executions.webhooks import CallbackRefused, callback_check, webhook_create
from tenants.models import Role
from workflows.api import workflow_of
from workflows.models import Workflow
from workflows.services import workflow_validate

logger = structlog.get_logger(__name__)

USAGE_DAYS_MAX = 90
EVENT_ID_MAX = column_max(ExecutionEvent, "id")
FILE_NAME = r"[0-9a-f]{16}\.(png|jpg|webp|bin)"


def execute_response(execution: Execution) -> dict[str, Any]:
    shown = "success" if execution.status == Status.SUCCEEDED else execution.status
    return {
        "status": shown,
        "execution_status": execution.status,
        "execution_id": execution.id,
        "final_state": execution.final_state,
        "execution_time": execution.execution_time,
        "tokens_used": execution.tokens_used,
        "cost": float(execution.cost),
        "error": execution.error,
    }


def _answer(execution: Execution) -> Response:
    """200 with the outcome of a finished run; 202 with its id and Location while it runs."""
    if execution.status in FINISHED:
        return Response(execute_response(execution))
    location = f"/api/v1/executions/{execution.id}"
    body = {"status": execution.status, "execution_id": execution.id, "location": location}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


def _request_hash(request: Request) -> str:
    canonical = json.dumps([request.path, request.data], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyKeyReused(FieldRefused):
    status_code = 422
    default_detail = "This Idempotency-Key was used with another request; use a new key."
    default_code = "idempotency_key_reused"
    field = "Idempotency-Key"


class UnknownVersion(FieldRefused):
    """422: a well-formed `version` the workflow does not have (yet)."""

    status_code = 422
    default_detail = "The workflow has no such version."
    default_code = "unknown_version"
    field = "version"


class CallbackUrlRefused(FieldRefused):
    """422: a callback_url the tenant's http sources could not call either."""

    status_code = 422
    default_detail = "The callback_url is refused."
    default_code = "callback_url_refused"
    field = "callback_url"


class ApprovalNeedsBackground(FieldRefused):
    """422: a sync execute of a workflow that asks a person: its request cannot wait for that."""

    status_code = 422
    default_code = "approval_needs_background"
    default_detail = "An approval cannot be waited for in a synchronous request."
    field = "mode"

    def __init__(self, node_ids: list[str]) -> None:
        message = (
            f"Node {', '.join(repr(n) for n in node_ids)} asks a person for approval, which a "
            'synchronous request cannot wait for: run it with "mode": "async" and answer at '
            "POST /executions/{id}/resume."
        )
        super().__init__(message)


def approval_nodes(validated: Any) -> list[str]:
    return [node.id for node in validated.spec.nodes if node.type == "approval"]


def _replayed(principal: Principal, key: str, digest: str) -> Execution | None:
    """The execution an Idempotency-Key already made, if any (422 if the body differs)."""
    if not key:
        return None
    found = Execution.objects.for_tenant(principal.tenant).filter(idempotency_key=key).first()
    if found is not None and found.request_hash != digest:
        raise IdempotencyKeyReused()
    return found


def _default_timeout(background: bool) -> float | None:
    """A sync run is bounded by the operator's ceiling; a background one by its spec."""
    return None if background else float(settings.AGENTFLOW_SYNC_TIMEOUT)


def _run(
    request: Request,
    spec: Any,
    body: dict[str, Any],
    workflow: Workflow | None = None,
    version: int | None = None,
) -> Response:
    principal = principal_of(request)
    key = request.headers.get("Idempotency-Key", "")[:255]
    digest = _request_hash(request) if key else ""
    earlier = _replayed(principal, key, digest)
    if earlier is not None:
        return _answer(earlier)
    callback = body.get("callback_url", "")
    if callback:
        try:
            callback_check(callback, principal.tenant)
        except CallbackRefused as exc:
            raise CallbackUrlRefused(str(exc)) from exc
    validated = workflow_validate(spec=spec, tenant=principal.tenant)
    if not validated.valid:
        raise InvalidSpec([dict(e.to_dict()) for e in validated.errors])
    background = body["mode"] == "async"
    if not background and (asking := approval_nodes(validated)):
        raise ApprovalNeedsBackground(asking)
    try:
        with transaction.atomic():
            # Lock the stored workflow's row: a delete (which takes the same lock and refuses
            # while runs are active) either comes first and this run is a 404, or waits for it.
            if workflow is not None and not (
                Workflow.objects.select_for_update().alive().filter(pk=workflow.pk).exists()
            ):
                raise exceptions.NotFound(f"No workflow {workflow.id}.")
            execution = execution_create(
                tenant=principal.tenant,
                validated=validated,
                mode=body["mode"],
                initial_state=body["initial_state"],
                timeout_seconds=body.get("timeout_seconds", _default_timeout(background)),
                created_by=principal.actor,
                workflow=workflow,
                workflow_version=version,
                idempotency_key=key,
                request_hash=digest,
                claim=not background,  # run here at once: created held by this process
            )
            if callback:
                webhook_create(execution=execution, url=callback)
            if background:
                enqueue_run(execution.id)  # same transaction: both commit or neither
    except IntegrityError:  # the same key, sent twice at once: answer with the first
        earlier = _replayed(principal, key, digest)
        if earlier is None:
            raise
        return _answer(earlier)
    if background:
        return _answer(execution)
    try:
        ran = execution_run(execution_id=execution.id, validated=validated, claimed=True)
    except Exception as exc:
        logger.exception("sync_run_interrupted", execution_id=execution.id)
        if not isinstance(exc, ExecutionCrashed):  # a crash is reported as its run's failure
            capture_exception(exc, execution_id=execution.id)
        raise RunInterrupted(execution.id, _status_if_known(execution.id), _reason(exc)) from exc
    return _answer(ran)


def _status_if_known(execution_id: str) -> str:
    try:
        found = Execution.objects.filter(pk=execution_id).values_list("status", flat=True)
        return str(found.first() or "unknown")
    except DatabaseError:
        return "unknown (the database does not answer)"


def _reason(exc: Exception) -> str:
    if isinstance(exc, DatabaseError):
        return "the database did not answer"
    return "an internal error, logged"


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="the same key again answers with the execution it made (422 if the body "
    "differs); up to 255 characters are kept",
)
LOCATION = OpenApiParameter(
    "Location",
    str,
    OpenApiParameter.HEADER,
    description="the execution's URL, to poll",
    response=[202],
)
EXECUTE_RESPONSES = {
    200: OpenApiResponse(ExecuteResponseSerializer, description="the run finished"),
    202: OpenApiResponse(
        ExecuteAcceptedSerializer,
        description="`mode: async`: the run is queued; poll the execution at `Location`",
    ),
}


class WorkflowExecuteApi(APIView):
    """Validate a spec and run it at once (`mode: sync`), answering with its final state;
    `mode: async` queues it and answers 202 with its `Location`."""

    write_role = Role.EXECUTOR
    problem_statuses = {"post": (422,)}

    @extend_schema(
        request=ExecuteRequestSerializer,
        parameters=[IDEMPOTENCY_KEY, LOCATION],
        responses=EXECUTE_RESPONSES,
        operation_id="workflows_execute",
    )
    def post(self, request: Request) -> Response:
        body = ExecuteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _run(request, body.validated_data["workflow"], body.validated_data)


class StoredWorkflowExecuteApi(APIView):
    """Run a stored workflow: its current version, or the `version` named."""

    write_role = Role.EXECUTOR
    problem_statuses = {"post": (422,)}

    @extend_schema(
        request=StoredExecuteRequestSerializer,
        parameters=[IDEMPOTENCY_KEY, LOCATION],
        responses=EXECUTE_RESPONSES,
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
            raise UnknownVersion(f"Workflow {workflow.id} has versions 1 to {workflow.version}.")
        return _run(request, saved.spec, body.validated_data, workflow, version)


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
            Execution.objects.for_tenant(tenant)
            .select_related("webhook")
            .prefetch_related("node_runs"),
            pk=execution_id,
        )
        return Response(ExecutionSerializer(execution).data)


class ExecutionFileApi(APIView):
    """A file a run produced (a generated image), readable only by the run's tenant."""

    @extend_schema(responses={(200, "image/*"): bytes}, operation_id="executions_file")
    def get(self, request: Request, execution_id: str, name: str) -> FileResponse:
        tenant = principal_of(request).tenant
        execution = get_object_or_404(Execution.objects.for_tenant(tenant), pk=execution_id)
        path = execution.file_path(name)
        if not default_storage.exists(path):
            raise exceptions.NotFound()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return FileResponse(default_storage.open(path), content_type=content_type)


def _execution(request: Request, execution_id: str) -> Execution:
    tenant = principal_of(request).tenant
    return get_object_or_404(Execution.objects.for_tenant(tenant), pk=execution_id)


class ExecutionCancelApi(APIView):
    """Stop a queued, waiting or running execution. A running one stops within about half a
    second, keeping its partial state; the answer waits up to 3 s for that (202 if still
    stopping)."""

    write_role = Role.EXECUTOR
    problem_statuses = {"post": (409,)}

    @extend_schema(
        request=None, responses={200: ExecutionListSerializer, 202: ExecutionListSerializer}
    )
    def post(self, request: Request, execution_id: str) -> Response:
        execution = _execution(request, execution_id)
        try:
            execution = execution_cancel(execution=execution, actor=principal_of(request).actor)
        except ExecutionFinished as exc:
            raise Conflict(str(exc)) from exc
        deadline = time.monotonic() + 3
        while execution.status not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.1)
            execution.refresh_from_db()
        code = status.HTTP_200_OK if execution.status in FINISHED else status.HTTP_202_ACCEPTED
        return Response(ExecutionListSerializer(execution).data, status=code)


def _last_event_id(request: Request) -> int:
    """Where a reconnecting stream resumes: `Last-Event-ID`, else `?last_event_id=`, else 0.
    Each one given must be a valid id (a 400 naming it), even the one the other overrides."""
    found = 0
    for field, raw in (
        ("last_event_id", request.query_params.get("last_event_id")),
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
    ):
        if raw is not None and (raw or field == "last_event_id"):  # an empty header: none
            found = whole_number(raw, field=field, low=0, high=EVENT_ID_MAX)
    return found


class ExecutionEventsApi(APIView):
    """Server-sent events: `node_started`, `node_finished` (duration, tokens, cost), `token`
    (streamed LLM text, batched), then `end`. Reconnect with `Last-Event-ID` (or
    `?last_event_id=`) to get what was missed."""

    renderer_classes = (JSONRenderer, EventStreamRenderer)  # EventSource sends only SSE's type

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                {"type": "string", "pattern": "^[0-9]{0,19}$"},
                OpenApiParameter.HEADER,
                description="resume after this event id",
            ),
            OpenApiParameter(
                "last_event_id",
                {"type": "integer", "minimum": 0, "maximum": EVENT_ID_MAX},
                description="resume after this event id (when the header cannot be sent)",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                {"type": "string", "description": "`id:`, `event:` and `data:` lines (SSE)"},
                description="a stream of server-sent events, ending with `event: end`",
            )
        },
        operation_id="executions_events",
    )
    def get(self, request: Request, execution_id: str) -> StreamingHttpResponse:
        execution = _execution(request, execution_id)
        last_id = _last_event_id(request)
        # The connection this request used goes back to the pool now, not when the stream ends.
        if not connection.in_atomic_block:
            connection.close()
        response = StreamingHttpResponse(
            event_stream(execution.id, last_id), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream
        return response


class UsageApi(APIView):
    """Tokens and cost used today and on each of the last `days` days (UTC), and what the
    daily budget leaves."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "days",
                {"type": "integer", "minimum": 1, "maximum": USAGE_DAYS_MAX, "default": 7},
                description=f"days back, 1-{USAGE_DAYS_MAX} (default 7)",
            )
        ],
        responses=OpenApiTypes.OBJECT,
        operation_id="usage",
    )
    def get(self, request: Request) -> Response:
        days = query_number(request.query_params, "days", default=7, low=1, high=USAGE_DAYS_MAX)
        return Response(usage_report(principal_of(request).tenant, days))
