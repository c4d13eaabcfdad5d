from rest_framework import serializers


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
