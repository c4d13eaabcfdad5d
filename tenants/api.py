from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from agentflow_site.pagination import AuditCursorPagination
from tenants.filters import AuditFilter
from tenants.models import ApiKey, AuditEvent, Role, Tenant
from tenants.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditEventSerializer,
    BudgetSerializer,
    MeSerializer,
)
from tenants.services import (
    TenantError,
    api_key_create,
    api_key_revoke,
    tenant_set_budget,
)


class MeApi(APIView):
    """Which tenant and role a key (or a staff user's admin session) has, and when the key
    expires: a way to check a key."""

    @extend_schema(responses=MeSerializer, operation_id="me")
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        key = principal.api_key
        data: dict[str, object] = {
            "tenant": principal.tenant.slug,
            "tenant_name": principal.tenant.name,
            "role": principal.role,
            "key_prefix": key.prefix if key else None,
            "key_name": key.name if key else None,
            "expires_at": key.expiry_date if key else None,
            "user": principal.username or None,
        }
        return Response(MeSerializer(data).data)


class _AdminOnly:
    read_role = Role.ADMIN
    write_role = Role.ADMIN


class ApiKeyListCreateApi(_AdminOnly, ListAPIView[ApiKey]):
    """The tenant's API keys (admin role). POST creates one and shows its secret once."""

    serializer_class = ApiKeySerializer

    def get_queryset(self) -> QuerySet[ApiKey]:
        return ApiKey.objects.for_tenant(principal_of(self.request).tenant).order_by("-created")

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request) -> Response:
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            api_key, secret = api_key_create(
                tenant=principal_of(request).tenant,
                role=body.validated_data["role"],
                name=body.validated_data["name"],
                expires_at=body.validated_data.get("expires_at"),
                rate_limit=body.validated_data["rate_limit"],
                actor=principal_of(request).actor,
            )
        except TenantError as exc:
            raise exceptions.ValidationError({"expires_at": [str(exc)]}) from exc
        api_key.key = secret  # type: ignore[attr-defined]
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailApi(_AdminOnly, APIView):
    @extend_schema(responses=ApiKeySerializer, operation_id="keys_retrieve")
    def get(self, request: Request, prefix: str) -> Response:
        api_key = get_object_or_404(
            ApiKey.objects.for_tenant(principal_of(request).tenant), prefix=prefix
        )
        return Response(ApiKeySerializer(api_key).data)


class ApiKeyRevokeApi(_AdminOnly, APIView):
    """Revoke a key for good. Revoking the key making the request is allowed."""

    @extend_schema(request=None, responses=ApiKeySerializer)
    def post(self, request: Request, prefix: str) -> Response:
        principal = principal_of(request)
        api_key = get_object_or_404(ApiKey.objects.for_tenant(principal.tenant), prefix=prefix)
        revoked = api_key_revoke(api_key=api_key, actor=principal.actor)
        return Response(ApiKeySerializer(revoked).data)


class AuditListApi(_AdminOnly, ListAPIView[AuditEvent]):
    """Who created, changed, deleted or executed what, and failed authentications with one of
    the tenant's keys; newest first. Admin keys only."""

    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.none()  # for the schema; get_queryset scopes to the tenant
    pagination_class = AuditCursorPagination
    filter_backends = (DjangoFilterBackend,)
    filterset_class = AuditFilter

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.filter(tenant=principal_of(self.request).tenant)


class BudgetApi(_AdminOnly, APIView):
    """The tenant's daily budget of tokens and cost (admin keys). A run that would go over it
    fails before the provider call with `budget_exceeded`; GET /usage shows what is left."""

    @extend_schema(responses=BudgetSerializer, operation_id="budget_retrieve")
    def get(self, request: Request) -> Response:
        return Response(_budget(principal_of(request).tenant))

    @extend_schema(request=BudgetSerializer, responses=BudgetSerializer)
    def put(self, request: Request) -> Response:
        body = BudgetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        principal = principal_of(request)
        tenant = tenant_set_budget(
            tenant=principal.tenant,
            daily_tokens=body.validated_data["daily_tokens"],
            daily_cost=body.validated_data["daily_cost"],
            actor=principal.actor,
        )
        return Response(_budget(tenant))


def _budget(tenant: Tenant) -> dict[str, object]:
    # Through the serializer, so the cost is the schema's fixed-point string ("0.00000000"),
    # never str(Decimal)'s exponent form ("0E-8").
    budget: dict[str, object] = {
        "daily_tokens": tenant.daily_token_budget,
        "daily_cost": tenant.daily_cost_budget,
    }
    return dict(BudgetSerializer(budget).data)
