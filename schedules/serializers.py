from typing import Any

from rest_framework import serializers

from agentflow_site.bounds import column_max
from schedules.models import Schedule
from workflows.models import WorkflowVersion


class ScheduleSerializer(serializers.ModelSerializer[Schedule]):
    workflow = serializers.CharField(source="workflow_id", read_only=True)
    last_execution = serializers.CharField(
        source="last_execution_id",
        read_only=True,
        help_text="the execution the last tick queued (empty if it queued none)",
    )

    class Meta:
        model = Schedule
        fields = (
            "id",
            "workflow",
            "cron",
            "timezone",
            "initial_state",
            "version",
            "paused",
            "next_run_at",
            "last_run_at",
            "last_execution",
            "last_error",
            "created_by",
            "created_at",
            "updated_at",
        )


class ScheduleWriteSerializer(serializers.Serializer[dict[str, Any]]):
    """A new schedule; PATCH takes any of these fields."""

    cron = serializers.CharField(
        max_length=100,
        help_text="five fields, minute hour day-of-month month day-of-week ('*/15 * * * *'), "
        "or an alias ('@hourly', '@daily')",
    )
    timezone = serializers.CharField(
        max_length=64, default="UTC", help_text="an IANA time zone the cron is read in"
    )
    initial_state = serializers.DictField(
        required=False, default=dict, help_text="each run's initial state"
    )
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=column_max(WorkflowVersion, "version"),
        help_text="the saved version each run pins; null or absent: the current one at each tick",
    )
    paused = serializers.BooleanField(default=False, help_text="true: no tick fires")
