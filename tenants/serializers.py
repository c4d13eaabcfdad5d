from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentflow_site.bounds import column_length, column_max
from agentflow_site.throttling import parse_rate
from tenants.models import ApiKey, AuditEvent, Role, Tenant


@extend_schema_field(
    {
        "type": "string",
        "format": "decimal",
        "pattern": r"^\d{1,10}(?:\.\d{1,8})?$",
        "minimum": 0,
        "description": "USD, at least 0, up to 8 decimal places (a number is accepted too)",
    }
)
class CostField(serializers.DecimalField):
    """A non-negative amount of USD; the document says so (the default pattern allows `-`)."""


class MeSerializer(serializers.Serializer[dict[str, object]]):
    tenant = serializers.CharField(help_text="the key's tenant (slug)")
    tenant_name = serializers.CharField()
    role = serializers.CharField()
    key_prefix = serializers.CharField(
        allow_null=True, help_text="the key's public handle; null for an admin session"
    )
    key_name = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    user = serializers.CharField(
        allow_null=True, help_text="the staff user whose admin session this is; null for a key"
    )


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    expires_at = serializers.DateTimeField(source="expiry_date", allow_null=True)
    created_at = serializers.DateTimeField(source="created")

    class Meta:
        model = ApiKey
        fields: tuple[str, ...] = (
            "prefix",
            "name",
            "role",
            "rate_limit",
            "created_at",
            "expires_at",
            "revoked",
        )
        read_only_fields: tuple[str, ...] = fields


def _check_rate(value: str) -> None:
    try:
        parse_rate(value)
    except ValueError as exc:
        raise serializers.ValidationError(
            "Use requests/period with at least 1 request, e.g. '120/min', '10/s', '5000/day'."
        ) from exc


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^\s*(?:[1-9][0-9]{0,8}/(?:s|sec|second|m|min|minute|h|hr|hour|d|day)s?)?\s*$",
    }
)
class RateField(serializers.CharField):
    """requests/period, as agentflow_site.throttling.parse_rate reads it (or empty)."""


class ApiKeyCreateSerializer(serializers.Serializer[dict[str, object]]):
    name = serializers.CharField(max_length=50)
    role = serializers.ChoiceField(choices=Role.values)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    rate_limit = RateField(
        required=False,
        allow_blank=True,
        default="",
        max_length=column_length(ApiKey, "rate_limit"),
        validators=[_check_rate],
        help_text="this key's request rate, e.g. '120/min'; empty: the server's default",
    )


class BudgetSerializer(serializers.Serializer[dict[str, object]]):
    daily_tokens = serializers.IntegerField(
        allow_null=True,
        min_value=0,
        max_value=column_max(Tenant, "daily_token_budget"),
        help_text="tokens per UTC day; null: no limit",
    )
    daily_cost = CostField(
        max_digits=18,
        decimal_places=8,
        allow_null=True,
        min_value=0,
        help_text="USD per UTC day; null: no limit",
    )


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="the secret key, shown this once and never again")

    class Meta(ApiKeySerializer.Meta):
        fields = (*ApiKeySerializer.Meta.fields, "key")
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = (
            "id",
            "at",
            "actor",
            "action",
            "target_type",
            "target_id",
            "details",
            "ip",
            "request_id",
        )
        read_only_fields = fields
