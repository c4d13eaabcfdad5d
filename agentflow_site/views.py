"""The start page, `/`: for staff, what ran lately and what is failing; for anyone else, the
way in (login) and the API docs, with no data."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_safe

from executions.selectors import FAILING_SINCE, failing_workflows, recent_runs
from tenants import staff


def _sees_runs(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm("executions.view_execution"))


@require_safe
def start_page(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "AgentFlow"}
    if _sees_runs(request):
        mine = staff.tenant_ids(request.user)  # the tenants this user acts for (None: all)
        context |= {
            "runs": recent_runs(tenant_ids=mine),
            "failing": failing_workflows(tenant_ids=mine),
            "failing_days": FAILING_SINCE.days,
            "staff": True,
            "acts_for_none": mine == set(),
        }
    return TemplateResponse(request, "agentflow_site/start.html", context)
