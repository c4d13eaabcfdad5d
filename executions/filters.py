import django_filters

from agentflow_site.filters import UtcDateTimeFilter
from executions.models import Execution, Status


class ExecutionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Status.choices)
    workflow = django_filters.CharFilter(field_name="workflow_id", help_text="a workflow id")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Execution
        fields = ("status", "workflow", "created_after", "created_before")
