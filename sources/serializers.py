from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentflow_site.bounds import column_length
from runtime.source_configs import SOURCE_CONFIGS
from sources.models import Source, SourceVersion

SOURCE_KINDS = sorted(SOURCE_CONFIGS)


@extend_schema_field({"type": "string", "enum": SOURCE_KINDS})
class SourceKindField(serializers.CharField):
    """A source kind. Checked with the config (an unknown one is a 422 naming the kinds), so
    only the document lists them."""


class SourceSerializer(serializers.ModelSerializer[Source]):
    kind = SourceKindField(read_only=True)

    class Meta:
        model = Source
        fields: tuple[str, ...] = (
            "id",
            "name",
            "kind",
            "config",
            "description",
            "version",
            "created_at",
            "updated_at",
            "created_by",
            "updated_by",
        )
        read_only_fields = fields


class SourceWriteSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.RegexField(
        r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$",
        help_text="what specs call it; letters, digits, _ . -",
    )
    kind = SourceKindField(max_length=column_length(Source, "kind"), help_text="the kind of source")
    config = serializers.DictField(help_text="names environment variables, never secrets")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class SourceVersionSerializer(serializers.ModelSerializer[SourceVersion]):
    kind = SourceKindField(read_only=True)

    class Meta:
        model = SourceVersion
        fields = ("version", "kind", "config", "created_at", "created_by")
        read_only_fields = fields


class SourceTestSerializer(serializers.Serializer[dict[str, Any]]):
    ok = serializers.BooleanField()
    checks = serializers.ListField(child=serializers.DictField())
    warnings = serializers.ListField(child=serializers.CharField())
