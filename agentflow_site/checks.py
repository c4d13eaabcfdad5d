"""Configuration mistakes caught at start-up (`manage.py check`), with stable ids."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from agentflow_site.throttling import parse_rate


@register()
def check_environment(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every variable settings.py could not take (agentflow_site/config.py), one error each."""
    return [
        Error(problem.line(), id="agentflow.E100")
        for problem in getattr(settings, "CONFIG_PROBLEMS", [])
    ]


@register()
def check_redis(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A configured Redis that does not answer at start: the API runs, degraded (W002)."""
    if not settings.REDIS_URL:
        return []
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        where = settings.REDIS_URL.rsplit("@", 1)[-1]  # never its password
        return [
            Warning(
                f"REDIS_URL: Redis at {where} did not answer ({exc}).",
                hint="Start Redis or fix REDIS_URL. Until it answers, throttles and the cache "
                "fail open and /health says degraded; rate limits and budgets refuse calls.",
                id="agentflow.W002",
            )
        ]
    return []


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


@register()
def check_node_plugins(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Enabled node plugins that could not be loaded (W020) or are not installed (W021)."""
    from agentflow_site.plugins import plugin_warnings

    return plugin_warnings()
