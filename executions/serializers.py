from typing import Any

from django.conf import settings
from django.db.models import Manager
from rest_framework import serializers

from agentflow_site.bounds import column_max
from agentflow_site.schema import WorkflowSpecField
from executions.approvals import waiting_for
from executions.models import Execution, NodeRun, WebhookDelivery
from executions.trace import loop_passes
from workflows.models import WorkflowVersion


class ExecuteRequestSerializer(serializers.Serializer[dict[str, Any]]):
    workflow = WorkflowSpecField(required=False, help_text="a WorkflowSpec (or send it as `spec`)")
    spec = WorkflowSpecField(
        required=False,
        help_text="the same, in the envelope stored workflows and /workflows/validate take; "
        "send one of `workflow` and `spec`",
    )
    initial_state = serializers.DictField(required=False, default=dict)
    mode = serializers.ChoiceField(choices=["sync", "async"], default="sync")
    timeout_seconds = serializers.FloatField(required=False, min_value=0.001)
    callback_url = serializers.CharField(
        required=False,
        max_length=2048,
        help_text="POST the run's outcome here when it ends, signed (`X-AgentFlow-Signature`); "
        "reachable as the tenant's http sources are",
    )

    def validate_workflow(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a WorkflowSpec (a JSON object).")
        return value

    validate_spec = validate_workflow

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("workflow", "spec") if name in attrs]
        if len(given) != 1:
            said = "both" if given else "neither"
            raise serializers.ValidationError(
                {"workflow": [f"Send the WorkflowSpec as `workflow` or as `spec`, not {said}."]}
            )
        attrs["workflow"] = attrs.pop(given[0])
        return _sync_timeout_checked(attrs)


def _sync_timeout_checked(attrs: dict[str, Any]) -> dict[str, Any]:
    timeout, sync = attrs.get("timeout_seconds"), attrs.get("mode", "sync") == "sync"
    ceiling = settings.AGENTFLOW_SYNC_TIMEOUT
    if sync and timeout is not None and timeout > ceiling:
        raise serializers.ValidationError(
            {"timeout_seconds": [f"At most {ceiling:g} seconds for a sync run."]}
        )
    return attrs


class StoredExecuteRequestSerializer(serializers.Serializer[dict[str, Any]]):
    initial_state = serializers.DictField(required=False, default=dict)
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=column_max(WorkflowVersion, "version"),
        help_text="a saved version; default: the current one",
    )
    mode = serializers.ChoiceField(choices=["sync", "async"], default="sync")
    timeout_seconds = serializers.FloatField(required=False, min_value=0.001)
    callback_url = serializers.CharField(
        required=False,
        max_length=2048,
        help_text="POST the run's outcome here when it ends, signed (`X-AgentFlow-Signature`); "
        "reachable as the tenant's http sources are",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return _sync_timeout_checked(attrs)


class ReplayRequestSerializer(serializers.Serializer[dict[str, Any]]):
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=column_max(WorkflowVersion, "version"),
        help_text="a saved version of the run's workflow; default: the spec the run ran",
    )
    from_node = serializers.CharField(
        required=False,
        max_length=64,
        help_text="keep the recorded results of the nodes before this one; run it and the "
        "rest afresh",
    )
    mode = serializers.ChoiceField(
        choices=["sync", "async"], required=False, help_text="default: the run's own"
    )
    initial_state = serializers.DictField(
        required=False, help_text="default: the run's own initial state"
    )


class ExecuteResponseSerializer(serializers.Serializer[dict[str, Any]]):
    status = serializers.CharField(
        help_text="success, failed, timed_out or cancelled (SPEC §4's word for a success)"
    )
    execution_status = serializers.CharField(
        help_text="the execution's own status, as GET /executions/{id} says it: succeeded, "
        "failed, timed_out or cancelled"
    )
    execution_id = serializers.CharField()
    final_state = serializers.JSONField()
    execution_time = serializers.FloatField()
    tokens_used = serializers.IntegerField()
    cost = serializers.FloatField()
    error = serializers.JSONField(allow_null=True)


class ExecuteAcceptedSerializer(serializers.Serializer[dict[str, Any]]):
    """202: the run is queued, running or waiting; poll `location` (also the `Location`
    header)."""

    status = serializers.CharField(help_text="queued, running or waiting (on an approval)")
    execution_id = serializers.CharField()
    location = serializers.CharField(help_text="/api/v1/executions/{execution_id}")


class NodeRunListSerializer(serializers.ListSerializer[NodeRun]):
    """A run's node attempts in the order they started, each told its loop pass."""

    def to_representation(self, data: Any) -> list[Any]:
        rows = list(data.all() if isinstance(data, Manager) else data)
        for row, number in zip(rows, loop_passes(rows), strict=True):
            row.loop_pass = number
        return super().to_representation(rows)


class NodeRunSerializer(serializers.ModelSerializer[NodeRun]):
    cost = serializers.FloatField()
    loop_pass = serializers.IntegerField(
        read_only=True,
        help_text="which pass of a loop this attempt belongs to (1, 2, …); its retries share it",
    )

    class Meta:
        model = NodeRun
        list_serializer_class = NodeRunListSerializer
        fields = (
            "node_id",
            "node_type",
            "attempt",
            "loop_pass",
            "status",
            "started_at",
            "duration",
            "output",
            "tokens",
            "cost",
            "error",
            "details",
        )


class ExecutionListSerializer(serializers.ModelSerializer[Execution]):
    cost = serializers.FloatField()
    workflow = serializers.CharField(source="workflow_id", allow_null=True)

    class Meta:
        model = Execution
        fields: tuple[str, ...] = (
            "id",
            "status",
            "mode",
            "workflow",
            "workflow_version",
            "workflow_name",
            "tokens_used",
            "cost",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "execution_time",
        )


class WebhookDeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    """The completion webhook's delivery: `pending` until sent (or between retries)."""

    url = serializers.SerializerMethodField(help_text="the callback URL, without its query")

    class Meta:
        model = WebhookDelivery
        fields = (
            "url",
            "state",
            "attempts",
            "last_status",
            "last_error",
            "last_attempt_at",
            "next_attempt_at",
            "delivered_at",
        )

    def get_url(self, delivery: WebhookDelivery) -> str:
        return delivery.url.split("?", 1)[0].split("#", 1)[0]


class ExecutionSerializer(serializers.ModelSerializer[Execution]):
    cost = serializers.FloatField()
    workflow = serializers.CharField(source="workflow_id", allow_null=True)
    nodes = NodeRunSerializer(source="node_runs", many=True, read_only=True)
    webhook = WebhookDeliverySerializer(
        read_only=True, allow_null=True, help_text="null when the run named no callback_url"
    )
    waiting_for = serializers.SerializerMethodField(
        help_text="status `waiting`: {node_id, question, options, expires_at, on_expiry, since}; "
        "answer it with POST /executions/{id}/resume. Else null."
    )
    replay_of = serializers.CharField(
        source="replay_of_id",
        allow_null=True,
        read_only=True,
        help_text="the execution this run replays (POST /executions/{id}/replay); else null",
    )

    class Meta:
        model = Execution
        fields = (
            "id",
            "status",
            "mode",
            "workflow",
            "workflow_version",
            "replay_of",
            "replay_from_node",
            "workflow_name",
            "spec_digest",
            "initial_state",
            "final_state",
            "error",
            "tokens_used",
            "cost",
            "timeout_seconds",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "execution_time",
            "webhook",
            "waiting_for",
            "nodes",
        )

    def get_waiting_for(self, execution: Execution) -> dict[str, Any] | None:
        return waiting_for(execution)
