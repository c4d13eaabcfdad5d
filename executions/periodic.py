"""The django-q2 schedules AgentFlow's own periodic work runs on (`manage.py qcluster`).

Their migrations create them; `post_migrate` (after every `migrate`, and after a test database
is flushed) makes sure each still exists, so a deleted or flushed row comes back by itself.
An operator's change to one (its timing) is kept: only a missing schedule is created.
"""

from typing import Any

PERIODIC: dict[str, dict[str, Any]] = {
    "agentflow-reap-stale-runs": {
        "func": "executions.tasks.reap_stale_runs",
        "schedule_type": "I",
        "minutes": 1,
        "repeats": -1,
    },
    "agentflow-deliver-webhooks": {
        "func": "executions.tasks.deliver_webhooks",
        "schedule_type": "C",
        "cron": "* * * * *",
        "repeats": -1,
    },
    "agentflow-fire-schedules": {
        "func": "schedules.tasks.fire_due_schedules",
        "schedule_type": "C",
        "cron": "* * * * *",
        "repeats": -1,
    },
    "agentflow-prune": {
        "func": "executions.tasks.prune",
        "schedule_type": "C",
        "cron": "17 3 * * *",
        "repeats": -1,
    },
}


def ensure_periodic_tasks(using: str = "default", **kwargs: Any) -> None:
    """Create each of AgentFlow's django-q2 schedules that is missing (a post_migrate handler)."""
    from django_q.models import Schedule

    for name, fields in PERIODIC.items():
        Schedule.objects.using(using).get_or_create(name=name, defaults=fields)
