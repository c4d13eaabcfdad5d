import django_filters

from agentflow_site.filters import UtcDateTimeFilter
from workflows.models import Workflow


class WorkflowFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="part of the name")
    status = django_filters.ChoiceFilter(choices=Workflow.Status.choices)
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Workflow
        fields = ("name", "status", "created_after", "created_before")
