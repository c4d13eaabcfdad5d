from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from agentflow_site.errors import Conflict, InvalidSpec
from sources.models import Source, SourceVersion
from sources.probe import source_test
from sources.serializers import (
    SourceSerializer,
    SourceTestSerializer,
    SourceVersionSerializer,
    SourceWriteSerializer,
)
from sources.services import (
    SourceInUse,
    SourceInvalid,
    source_create,
    source_delete,
    source_problems,
    source_update,
)
from tenants.models import Tenant


def source_of(tenant: Tenant, source_id: str) -> Source:
    return get_object_or_404(Source.objects.for_tenant(tenant).alive(), pk=source_id)


def _invalid(exc: SourceInvalid) -> InvalidSpec:
    return InvalidSpec([dict(e.to_dict()) for e in exc.errors], what="source")


class SourceListCreateApi(ListAPIView[Source]):
    """The tenant's stored sources. A spec's node names one by id (`src_…`) or by name; a
    source declared inline in the spec wins."""

    problem_statuses = {"post": (422,)}

    serializer_class = SourceSerializer

    def get_queryset(self) -> QuerySet[Source]:
        return Source.objects.for_tenant(principal_of(self.request).tenant).alive()

    @extend_schema(request=SourceWriteSerializer, responses={201: SourceSerializer})
    def post(self, request: Request) -> Response:
        body = SourceWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        principal = principal_of(request)
        try:
            source = source_create(
                tenant=principal.tenant, actor=principal.actor, **body.validated_data
            )
        except SourceInvalid as exc:
            raise _invalid(exc) from exc
        headers = {"Location": f"/api/v1/sources/{source.id}"}
        return Response(
            SourceSerializer(source).data, status=status.HTTP_201_CREATED, headers=headers
        )


class SourceDetailApi(APIView):
    """One stored source. PUT replaces it, PATCH changes some fields; DELETE is soft, and
    refused (409) while a stored workflow uses the source."""

    problem_statuses = {"put": (409, 422), "patch": (409, 422), "delete": (409,)}

    @extend_schema(responses=SourceSerializer, operation_id="sources_retrieve")
    def get(self, request: Request, source_id: str) -> Response:
        return Response(SourceSerializer(source_of(principal_of(request).tenant, source_id)).data)

    @extend_schema(request=SourceWriteSerializer, responses=SourceSerializer)
    def put(self, request: Request, source_id: str) -> Response:
        source_of(principal_of(request).tenant, source_id)  # an unknown id is a 404 first
        body = SourceWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._update(request, source_id, body.validated_data)

    @extend_schema(request=SourceWriteSerializer(partial=True), responses=SourceSerializer)
    def patch(self, request: Request, source_id: str) -> Response:
        source_of(principal_of(request).tenant, source_id)  # an unknown id is a 404 first
        body = SourceWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        return self._update(request, source_id, body.validated_data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, source_id: str) -> Response:
        principal = principal_of(request)
        try:
            source_delete(source=source_of(principal.tenant, source_id), actor=principal.actor)
        except SourceInUse as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, source_id: str, changes: dict[str, Any]) -> Response:
        principal = principal_of(request)
        source = source_of(principal.tenant, source_id)
        try:
            saved = source_update(source=source, changes=changes, actor=principal.actor)
        except SourceInvalid as exc:
            raise _invalid(exc) from exc
        except SourceInUse as exc:
            raise Conflict(str(exc)) from exc
        return Response(SourceSerializer(saved).data)


class SourceVersionsApi(ListAPIView[SourceVersion]):
    """Every saved config of a source, newest first."""

    serializer_class = SourceVersionSerializer

    def get_queryset(self) -> QuerySet[SourceVersion]:
        source = source_of(principal_of(self.request).tenant, self.kwargs["source_id"])
        return source.versions.all()


class SourceTestApi(APIView):
    """Check that the source answers (connect, list models, SELECT 1) and say what failed;
    for databases, warn when the role could write or is a superuser."""

    @extend_schema(request=None, responses=SourceTestSerializer, operation_id="sources_test")
    def post(self, request: Request, source_id: str) -> Response:
        source = source_of(principal_of(request).tenant, source_id)
        problems = source_problems(source)
        if problems:  # e.g. a variable no longer granted: never read it, never send it
            checks = [{"name": "config", "ok": False, "detail": p.message} for p in problems]
            return Response({"ok": False, "checks": checks, "warnings": []})
        return Response(source_test(source))
