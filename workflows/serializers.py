from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentflow_site.schema import WorkflowSpecField
from workflows.models import Workflow, WorkflowVersion


class SpecErrorSerializer(serializers.Serializer[dict[str, object]]):
    type = serializers.CharField(help_text="one of the types in SPEC §1, e.g. missing_node")
    message = serializers.CharField()
    node_id = serializers.CharField(allow_null=True)
    path = serializers.CharField(help_text="JSON Pointer into the spec, e.g. /nodes/3/metadata")
    line = serializers.IntegerField(allow_null=True)
    column = serializers.IntegerField(allow_null=True)


class ValidationResultSerializer(serializers.Serializer[dict[str, object]]):
    valid = serializers.BooleanField()
    errors = SpecErrorSerializer(many=True)  # type: ignore[assignment]
    warnings = SpecErrorSerializer(many=True)


class WorkflowSerializer(serializers.ModelSerializer[Workflow]):
    class Meta:
        model = Workflow
        fields: tuple[str, ...] = (
            "id",
            "name",
            "description",
            "status",
            "version",
            "node_count",
            "created_at",
            "updated_at",
            "created_by",
            "updated_by",
        )
        read_only_fields = fields


class WorkflowDetailSerializer(WorkflowSerializer):
    spec = WorkflowSpecField(read_only=True)

    class Meta(WorkflowSerializer.Meta):
        fields = (*WorkflowSerializer.Meta.fields, "spec")
        read_only_fields = fields


class WorkflowWriteSerializer(serializers.Serializer[dict[str, Any]]):
    spec = WorkflowSpecField(
        help_text="the WorkflowSpec; its name and description are the workflow's"
    )

    def validate_spec(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a WorkflowSpec (a JSON object).")
        return value


@extend_schema_field({"type": "object", "additionalProperties": True})
class MergePatchField(serializers.JSONField):
    """A JSON Merge Patch of a spec: an object (the spec is one)."""


class WorkflowPatchSerializer(WorkflowWriteSerializer):
    spec = MergePatchField(  # type: ignore[assignment]
        help_text="a JSON Merge Patch (RFC 7386) applied to the current spec"
    )


class WorkflowVersionSerializer(serializers.ModelSerializer[WorkflowVersion]):
    spec = WorkflowSpecField(read_only=True)

    class Meta:
        model = WorkflowVersion
        fields = ("version", "created_at", "created_by", "spec")
        read_only_fields = fields
