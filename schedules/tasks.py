"""django-q2's entry point: `qcluster` calls it every minute (migration 0002 schedules it)."""

from schedules.services import schedules_fire_due


def fire_due_schedules() -> int:
    """Queue a run for every schedule whose tick has come; how many were queued."""
    return len(schedules_fire_due())
