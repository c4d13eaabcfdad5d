"""`/workflows/{id}/schedules`: cron schedules that queue runs of a stored workflow."""

import hashlib
import json
from typing import Any

from django.db import IntegrityError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import Principal, principal_of
from agentflow_site.errors import Conflict, FieldRefused
from schedules.models import Schedule
from schedules.serializers import ScheduleSerializer, ScheduleWriteSerializer
from schedules.services import (
    ScheduleRefused,
    TooManySchedules,
    schedule_create,
    schedule_delete,
    schedule_update,
)
from workflows.api import workflow_of

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="the same key again answers with the schedule it made (422 if the body "
    "differs); up to 255 characters are kept",
)


class ScheduleInvalid(FieldRefused):
    """422 naming the field: a cron expression, time zone or version that will not do."""

    status_code = 422
    default_detail = "The schedule is not valid."
    default_code = "invalid_schedule"


def _request_hash(request: Request) -> str:
    canonical = json.dumps([request.path, request.data], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replayed(principal: Principal, key: str, digest: str) -> Schedule | None:
    if not key:
        return None
    found = Schedule.objects.for_tenant(principal.tenant).filter(idempotency_key=key).first()
    if found is not None and found.request_hash != digest:
        raise ScheduleInvalid(
            "This Idempotency-Key was used with another request; use a new key.",
            field="Idempotency-Key",
        )
    return found


def _created(schedule: Schedule) -> Response:
    location = f"/api/v1/workflows/{schedule.workflow_id}/schedules/{schedule.id}"
    data = ScheduleSerializer(schedule).data
    return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})


class ScheduleListCreateApi(ListAPIView[Schedule]):
    """A workflow's cron schedules. POST adds one: each tick (in `timezone`) queues a background
    run with `initial_state`, as `POST /workflows/{id}/execute` with `mode: async` does; the
    execution's `created_by` is `schedule:<id>`. 422 names a bad `cron`, `timezone` or `version`;
    409 when the tenant has AGENTFLOW_SCHEDULE_MAX_PER_TENANT schedules."""

    serializer_class = ScheduleSerializer
    queryset = Schedule.objects.none()  # for the schema; get_queryset scopes to the workflow
    problem_statuses = {"post": (409, 422)}
    body_required = ("post",)

    def get_queryset(self) -> QuerySet[Schedule]:
        workflow = workflow_of(principal_of(self.request).tenant, self.kwargs["workflow_id"])
        return Schedule.objects.filter(workflow=workflow)

    @extend_schema(
        request=ScheduleWriteSerializer,
        responses={201: ScheduleSerializer},
        parameters=[IDEMPOTENCY_KEY],
        operation_id="workflows_schedules_create",
        summary="Create a workflow's schedule",
    )
    def post(self, request: Request, workflow_id: str) -> Response:
        principal = principal_of(request)
        workflow = workflow_of(principal.tenant, workflow_id)
        body = ScheduleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "")[:255]
        digest = _request_hash(request) if key else ""
        earlier = _replayed(principal, key, digest)
        if earlier is not None:
            return _created(earlier)
        try:
            schedule = schedule_create(
                workflow=workflow,
                fields=dict(body.validated_data),
                actor=principal.actor,
                idempotency_key=key,
                request_hash=digest,
            )
        except ScheduleRefused as exc:
            raise ScheduleInvalid(exc.message, field=exc.field) from exc
        except TooManySchedules as exc:
            raise Conflict(str(exc)) from exc
        except IntegrityError:  # the same key, sent twice at once: answer with the first
            earlier = _replayed(principal, key, digest)
            if earlier is None:
                raise
            return _created(earlier)
        return _created(schedule)


class ScheduleDetailApi(APIView):
    """One schedule. PATCH changes any field (`"paused": true` pauses it; a resume, or a new
    cron or time zone, counts the next tick from now: ticks missed while paused do not run).
    DELETE removes it; runs it already queued go on."""

    problem_statuses = {"patch": (422,)}
    body_required = ("patch",)

    def _schedule(self, request: Request, workflow_id: str, schedule_id: str) -> Schedule:
        workflow = workflow_of(principal_of(request).tenant, workflow_id)
        return get_object_or_404(Schedule.objects.filter(workflow=workflow), pk=schedule_id)

    @extend_schema(
        responses=ScheduleSerializer,
        operation_id="workflows_schedules_retrieve",
        summary="Get a workflow's schedule",
    )
    def get(self, request: Request, workflow_id: str, schedule_id: str) -> Response:
        schedule = self._schedule(request, workflow_id, schedule_id)
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(
        request=ScheduleWriteSerializer(partial=True),
        responses=ScheduleSerializer,
        operation_id="workflows_schedules_partial_update",
        summary="Update (or pause) a workflow's schedule",
    )
    def patch(self, request: Request, workflow_id: str, schedule_id: str) -> Response:
        schedule = self._schedule(request, workflow_id, schedule_id)
        body = ScheduleWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes: dict[str, Any] = dict(body.validated_data)
        try:
            saved = schedule_update(
                schedule=schedule, changes=changes, actor=principal_of(request).actor
            )
        except ScheduleRefused as exc:
            raise ScheduleInvalid(exc.message, field=exc.field) from exc
        return Response(ScheduleSerializer(saved).data)

    @extend_schema(
        responses={204: None},
        operation_id="workflows_schedules_destroy",
        summary="Delete a workflow's schedule",
    )
    def delete(self, request: Request, workflow_id: str, schedule_id: str) -> Response:
        schedule = self._schedule(request, workflow_id, schedule_id)
        schedule_delete(schedule=schedule, actor=principal_of(request).actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
