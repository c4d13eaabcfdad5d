import django_filters

from agentflow_site.filters import UtcDateTimeFilter
from tenants.models import AuditEvent


class AuditFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(help_text="key:<prefix> or user:<name>")
    action = django_filters.CharFilter(
        help_text="e.g. workflow.update; a prefix ending in '.' matches a family (workflow.)",
        method="_action",
    )
    target_id = django_filters.CharFilter()
    after = UtcDateTimeFilter(field_name="at", lookup_expr="gte")
    before = UtcDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ("actor", "action", "target_id", "after", "before")

    def _action(self, queryset, name, value):  # type: ignore[no-untyped-def]
        if value.endswith("."):
            return queryset.filter(action__startswith=value)
        return queryset.filter(action=value)
