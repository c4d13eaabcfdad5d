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


class PriceSerializer(serializers.Serializer[dict[str, object]]):
    input = serializers.FloatField(help_text="USD per million prompt tokens")
    output = serializers.FloatField(help_text="USD per million completion tokens")


class NodeEstimateSerializer(serializers.Serializer[dict[str, object]]):
    node_id = serializers.CharField()
    call = serializers.ChoiceField(choices=["chat", "embeddings", "image"])
    source = serializers.CharField()  # type: ignore[assignment]
    model = serializers.CharField()
    tokenizer = serializers.ChoiceField(
        choices=["o200k_base", "cl100k_base", "approximate"],
        help_text="tiktoken's encoding for OpenAI models; `approximate`: 4 characters a token",
    )
    prompt_tokens = serializers.IntegerField(
        help_text="the prompt rendered from the initial state (what earlier nodes write left out)"
    )
    prompt_tokens_max = serializers.IntegerField(
        help_text="the same with earlier chat nodes' results as long as their completion bound"
    )
    completion_tokens_max = serializers.IntegerField(
        help_text="the node's max_tokens, else its source's, else 1,000"
    )
    price_per_million_tokens = PriceSerializer()
    cost = serializers.FloatField(help_text="USD: prompt_tokens and completion_tokens_max")
    cost_max = serializers.FloatField(help_text="USD: prompt_tokens_max and completion_tokens_max")
    unknown_inputs = serializers.ListField(
        child=serializers.CharField(),
        help_text="state keys earlier nodes write that the prompt reads",
    )
    rendered = serializers.BooleanField(
        help_text="false: a template failed to render and its source text was counted"
    )


class PathEstimateSerializer(serializers.Serializer[dict[str, object]]):
    nodes = serializers.ListField(child=serializers.CharField())
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = serializers.FloatField(help_text="USD")
    loop_passes = serializers.DictField(
        child=serializers.IntegerField(), help_text='extra passes per loop edge ("from->to")'
    )


class EstimateSerializer(serializers.Serializer[dict[str, object]]):
    currency = serializers.CharField()
    nodes = NodeEstimateSerializer(many=True)
    most_expensive = PathEstimateSerializer()
    cheapest = PathEstimateSerializer()


class ValidationResultSerializer(serializers.Serializer[dict[str, object]]):
    valid = serializers.BooleanField()
    errors = SpecErrorSerializer(many=True)  # type: ignore[assignment]
    warnings = SpecErrorSerializer(many=True)
    estimate = EstimateSerializer(
        allow_null=True,
        required=False,
        help_text="only with ?estimate=true: what a run from `initial_state` may cost; null when "
        "the spec is not valid (or one node was checked)",
    )


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


def _changed_fields(example: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(), help_text=f"dotted paths of what changed, e.g. {example}"
    )


class ChangedEntrySerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.CharField()

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `fields` is a Serializer attribute: the field of that name joins here.
        return {**super().get_fields(), "fields": _changed_fields("metadata.prompt, type")}


class CollectionDiffSerializer(serializers.Serializer[dict[str, Any]]):
    added = serializers.ListField(child=serializers.CharField(), help_text="ids")
    removed = serializers.ListField(child=serializers.CharField(), help_text="ids")
    changed = ChangedEntrySerializer(many=True)
    reordered = serializers.BooleanField(help_text="the entries in both come in another order")


class EdgeRefSerializer(serializers.Serializer[dict[str, Any]]):
    to = serializers.CharField()
    condition = serializers.CharField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `from` is a Python keyword: the field of that name joins here.
        return {"from": serializers.CharField(), **super().get_fields()}


class EdgeChangeSerializer(EdgeRefSerializer):
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {**super().get_fields(), "fields": _changed_fields("loop.max_iterations")}


class EdgeDiffSerializer(serializers.Serializer[dict[str, Any]]):
    added = EdgeRefSerializer(many=True)
    removed = EdgeRefSerializer(many=True)
    changed = EdgeChangeSerializer(many=True)
    reordered = serializers.BooleanField()


class JsonPatchOperationSerializer(serializers.Serializer[dict[str, Any]]):
    op = serializers.ChoiceField(["add", "remove", "replace", "move", "copy", "test"])
    path = serializers.CharField(help_text="a JSON Pointer; empty for the whole document")
    value = serializers.JSONField(required=False)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        moved = serializers.CharField(required=False, help_text="move and copy: the source")
        return {**super().get_fields(), "from": moved}


class VersionDiffSerializer(serializers.Serializer[dict[str, Any]]):
    to = serializers.IntegerField(help_text="the version compared with `from`")
    nodes = CollectionDiffSerializer(help_text="nodes by id")
    edges = EdgeDiffSerializer(help_text="edges by (from, to, condition)")
    queues = CollectionDiffSerializer(help_text="queues by id")
    sources = CollectionDiffSerializer(help_text="inline sources by id")
    other = serializers.ListField(
        child=serializers.CharField(),
        help_text="every other changed field, dotted: name, description, limits.max_steps, …",
    )
    patch = JsonPatchOperationSerializer(
        many=True, help_text="RFC 6902 operations turning version `from`'s spec into `to`'s"
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        compared = serializers.IntegerField(help_text="the version compared")
        return {"from": compared, **super().get_fields()}
