"""Cron expressions read in a time zone: which tick is due, which comes next, how close they get.

Five fields (`minute hour day-of-month month day-of-week`) or an alias (`@hourly`, `@daily`…),
as croniter reads them. Ticks are wall-clock times in the schedule's zone (`0 9 * * *` is 9:00
there, summer or winter) and are returned in UTC.
"""

import itertools
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterError, croniter

SAMPLED_GAPS = 60
"""Consecutive ticks looked at for the shortest gap between two runs."""
_EPSILON = timedelta(microseconds=1)


class BadCron(ValueError):
    """A cron expression or a time zone AgentFlow does not read; the message says why."""


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (`Europe/Paris`, `UTC`).

    Raises:
        BadCron: no such zone.
    """
    if name not in _zones():
        raise BadCron(f"{name[:64]!r} is not an IANA time zone name (e.g. 'UTC', 'Europe/Paris').")
    return ZoneInfo(name)


def check(expression: str, timezone: str, *, min_interval: float) -> None:
    """Refuse an expression croniter cannot read, one with other than five fields, one that
    never fires, or one whose runs may come closer together than `min_interval` seconds.

    Raises:
        BadCron: the message names what to change.
    """
    fields = expression.split()
    alias = len(fields) == 1 and fields[0].startswith("@")
    if not alias and len(fields) != 5:
        raise BadCron(
            "A cron expression has five fields: minute hour day-of-month month day-of-week "
            "(e.g. '*/15 * * * *'), or is an alias such as '@hourly'."
        )
    if not croniter.is_valid(expression):
        raise BadCron(f"{expression[:100]!r} is not a valid cron expression.")
    gap = shortest_gap(expression, zone(timezone))
    if gap < min_interval:
        raise BadCron(
            f"{expression!r} runs {gap:g} s apart; schedules run at most every "
            f"{min_interval:g} s (AGENTFLOW_SCHEDULE_MIN_INTERVAL_SECONDS)."
        )


def shortest_gap(expression: str, tz: ZoneInfo, start: datetime | None = None) -> float:
    """The shortest gap between consecutive ticks among the next SAMPLED_GAPS (seconds)."""
    it = croniter(expression, (start or datetime.now(UTC)).astimezone(tz))
    try:
        ticks = [it.get_next(datetime) for _ in range(SAMPLED_GAPS + 1)]
    except CroniterError as exc:  # `0 0 31 2 *`: never
        raise BadCron(f"{expression!r} never fires.") from exc
    return min((b - a).total_seconds() for a, b in itertools.pairwise(ticks))


def latest_tick(expression: str, timezone: str, now: datetime) -> datetime:
    """The last tick at or before `now` (UTC)."""
    it = croniter(expression, (now + _EPSILON).astimezone(zone(timezone)))
    return it.get_prev(datetime).astimezone(UTC)


def next_tick(expression: str, timezone: str, now: datetime) -> datetime:
    """The first tick after `now` (UTC)."""
    it = croniter(expression, now.astimezone(zone(timezone)))
    return it.get_next(datetime).astimezone(UTC)
