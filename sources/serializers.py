from typing import Any

from rest_framework import serializers

from agentflow_site.bounds import column_length
from sources.models import Source, SourceVersion


class SourceSerializer(serializers.ModelSerializer[Source]):
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
    kind = serializers.CharField(
        max_length=column_length(Source, "kind"), help_text="openai, anthropic, postgres, http, …"
    )
    config = serializers.DictField(help_text="names environment variables, never secrets")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class SourceVersionSerializer(serializers.ModelSerializer[SourceVersion]):
    class Meta:
        model = SourceVersion
        fields = ("version", "kind", "config", "created_at", "created_by")
        read_only_fields = fields


class SourceTestSerializer(serializers.Serializer[dict[str, Any]]):
    ok = serializers.BooleanField()
    checks = serializers.ListField(child=serializers.DictField())
    warnings = serializers.ListField(child=serializers.CharField())
