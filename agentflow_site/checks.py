"""Configuration mistakes caught at start-up (`manage.py check`), with stable ids."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from agentflow_site.throttling import parse_rate


@register()
def check_agentflow_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning | Error]:
    problems: list[Warning | Error] = []
    try:
        parse_rate(settings.API_THROTTLE_RATE)
    except ValueError:
        problems.append(
            Error(
                f"API_THROTTLE_RATE {settings.API_THROTTLE_RATE!r} is not a rate.",
                hint="Use requests/period, e.g. '600/min', '20/s', '10000/day'.",
                id="agentflow.E001",
            )
        )
    if not settings.DEBUG and settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        problems.append(
            Warning(
                "Running with DEBUG off on SQLite.",
                hint="Set DATABASE_URL to PostgreSQL for production (several web processes "
                "and workers).",
                id="agentflow.W001",
            )
        )
    return problems
