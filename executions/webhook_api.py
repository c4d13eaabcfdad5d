"""`/webhook-secret`: the key the tenant's completion webhooks are signed with (admin keys)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from executions.models import WebhookSecret
from executions.webhooks import webhook_secret_get, webhook_secret_rotate
from tenants.models import Role


class WebhookSecretSerializer(serializers.ModelSerializer[WebhookSecret]):
    class Meta:
        model = WebhookSecret
        fields = ("secret", "created_at", "rotated_at")


class WebhookSecretApi(APIView):
    """The tenant's webhook signing secret, made on first read. Each webhook carries
    `X-AgentFlow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` keyed with
    it. POST rotates it: webhooks sent from then on are signed with the new one."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(
        responses=WebhookSecretSerializer,
        operation_id="webhook_secret_retrieve",
        summary="Get the webhook signing secret",
    )
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        found = webhook_secret_get(tenant=principal.tenant, actor=principal.actor)
        return Response(WebhookSecretSerializer(found).data)

    @extend_schema(
        request=None,
        responses=WebhookSecretSerializer,
        operation_id="webhook_secret_rotate",
        summary="Rotate the webhook signing secret",
    )
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        found = webhook_secret_rotate(tenant=principal.tenant, actor=principal.actor)
        return Response(WebhookSecretSerializer(found).data)
