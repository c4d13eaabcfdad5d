"""Reads about executions: what a tenant used today, and what its budget leaves."""

from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from executions.models import NodeRun
from runtime.budget import Budget
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


def usage_today(tenant: Tenant) -> tuple[int, Decimal]:
    start = _day_start()
    return usage_between(tenant, start, start + timedelta(days=1))


def budget_left(tenant: Tenant) -> Budget:
    """What the tenant may still spend today, for a run starting now."""
    tokens, cost = usage_today(tenant)
    token_budget, cost_budget = tenant.daily_token_budget, tenant.daily_cost_budget
    return Budget(
        tokens_left=None if token_budget is None else token_budget - tokens,
        cost_left=None if cost_budget is None else float(cost_budget - cost),
    )


def usage_report(tenant: Tenant, days: int) -> dict[str, Any]:
    start = _day_start()
    daily = []
    for back in range(days):
        day = start - timedelta(days=back)
        tokens, cost = usage_between(tenant, day, day + timedelta(days=1))
        daily.append({"date": day.date().isoformat(), "tokens": tokens, "cost": float(cost)})
    today = daily[0]
    left = budget_left(tenant)
    return {
        "today": today,
        "budget": {
            "daily_tokens": tenant.daily_token_budget,
            "daily_cost": float(tenant.daily_cost_budget)
            if tenant.daily_cost_budget is not None
            else None,
            "tokens_left": None if left.tokens_left is None else max(0, left.tokens_left),
            "cost_left": None if left.cost_left is None else max(0.0, round(left.cost_left, 8)),
        },
        "daily": daily,
    }
