"""Reads about executions: what a tenant used, and its daily budget."""

from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from executions.models import Execution, NodeRun, Status
from runtime.budget import DailyLimits, Spend
from tenants.models import Tenant


def _day_start(day: datetime | None = None) -> datetime:
    now = day or timezone.now()
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)


def usage_between(tenant: Tenant, start: datetime, end: datetime) -> tuple[int, Decimal]:
    """Tokens and cost of every node attempt of the tenant's runs started in [start, end)."""
    totals = NodeRun.objects.filter(
        execution__tenant=tenant, started_at__gte=start, started_at__lt=end
    ).aggregate(tokens=Sum("tokens"), cost=Sum("cost"))
    return int(totals["tokens"] or 0), Decimal(totals["cost"] or 0)


RUNS_COUNTED_SINCE = timedelta(days=2)
"""The budget's floor counts node runs of executions created this long before the day began
at most: a bounded, indexed read (the tenant's recent executions, then their node runs),
whatever the size of its history."""


def recorded_today(tenant: Tenant, start: datetime) -> tuple[int, Decimal]:
    """What the tenant's node attempts that started on the day beginning at `start` used."""
    totals = NodeRun.objects.filter(
        execution__tenant=tenant,
        execution__created_at__gte=start - RUNS_COUNTED_SINCE,
        started_at__gte=start,
        started_at__lt=start + timedelta(days=1),
    ).aggregate(tokens=Sum("tokens"), cost=Sum("cost"))
    return int(totals["tokens"] or 0), Decimal(totals["cost"] or 0)


def budget_limits(tenant: Tenant) -> DailyLimits:
    """The tenant's daily limits, with what its finished calls used today (where the day's
    count starts at least). Nothing is read when the tenant has no budget."""
    tokens, cost = tenant.daily_token_budget, tenant.daily_cost_budget
    if tokens is None and cost is None:
        return DailyLimits()
    start = _day_start()
    used, spent = recorded_today(tenant, start)
    return DailyLimits(
        tokens=tokens,
        cost=None if cost is None else float(cost),
        day=start.date(),
        recorded=Spend(used, float(spent)),
    )


def usage_report(tenant: Tenant, days: int) -> dict[str, Any]:
    start = _day_start()
    daily: list[dict[str, Any]] = []
    for back in range(days):
        day = start - timedelta(days=back)
        tokens, cost = usage_between(tenant, day, day + timedelta(days=1))
        daily.append({"date": day.date().isoformat(), "tokens": tokens, "cost": float(cost)})
    today = daily[0]
    token_budget = tenant.daily_token_budget
    cost_budget = None if tenant.daily_cost_budget is None else float(tenant.daily_cost_budget)
    return {
        "today": today,
        "budget": {
            "daily_tokens": token_budget,
            "daily_cost": cost_budget,
            "tokens_left": None if token_budget is None else max(0, token_budget - today["tokens"]),
            "cost_left": None
            if cost_budget is None
            else max(0.0, round(cost_budget - today["cost"], 8)),
        },
        "daily": daily,
    }


def recent_runs(limit: int = 10, tenant_ids: set[int] | None = None) -> list[Execution]:
    """The latest runs of the tenants `tenant_ids` (None: every tenant), newest first (the start
    page's list)."""
    runs = Execution.objects.select_related("tenant").order_by("-created_at")
    if tenant_ids is not None:
        runs = runs.filter(tenant_id__in=tenant_ids)
    return list(runs.only(*RUN_LIST_FIELDS)[:limit])


RUN_LIST_FIELDS = ("id", "workflow_name", "status", "created_at", "created_by", "tenant__slug")
FAILING_SINCE = timedelta(days=7)
"""A workflow counts as failing when one of its runs created this recently failed."""


def failing_workflows(limit: int = 10, tenant_ids: set[int] | None = None) -> list[dict[str, Any]]:
    """Stored workflows with failed runs lately: runs, failures, the last failure; the most
    recently failed first. Reads through the (status, created_at) index."""
    failed = Q(status__in=(Status.FAILED, Status.TIMED_OUT))
    rows = (
        Execution.objects.filter(created_at__gte=timezone.now() - FAILING_SINCE)
        .filter(workflow__isnull=False)
        .filter(**({} if tenant_ids is None else {"tenant_id__in": tenant_ids}))
        .values("workflow_id", "workflow__name", "tenant__slug")
        .annotate(runs=Count("id"), failures=Count("id", filter=failed))
        .annotate(last_failed=Max("created_at", filter=failed))
        .filter(failures__gt=0)
        .order_by("-last_failed")
    )
    return [dict(row) for row in rows[:limit]]
