import django_filters

from executions.models import Execution, Status


class ExecutionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Status.choices)
    workflow = django_filters.CharFilter(field_name="workflow_id", help_text="a workflow id")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Execution
        fields = ("status", "workflow", "created_after", "created_before")
