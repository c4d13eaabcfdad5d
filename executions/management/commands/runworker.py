"""`manage.py runworker`: a run worker process (executions/worker.py). Start as many as you
like, on as many machines; SIGTERM or Ctrl-C stops one gracefully."""

import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from agentflow_site.observability.sampler import sample_every_interval
from executions.wakeup import listens
from executions.worker import RunWorker

SQLITE_POLL = 0.1
"""Seconds between looks for queued runs on SQLite, which has no NOTIFY."""


def _commit_without_waiting_for_disk() -> None:
    """The worker's own bookkeeping (claims, heartbeats, trace rows, ends) commits without
    waiting for the disk (PostgreSQL's synchronous_commit=off: a server crash may lose its last
    fraction of a second of commits, never a torn one). Every such loss is repaired by a resume
    from the run's checkpoint, which its own connections commit durably. Waiting for the disk
    on each of these commits made one worker write ~300 commits a second at best."""
    connection = connections["default"]
    if connection.vendor == "postgresql":
        options = connection.settings_dict.setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()
        if isinstance(options.get("pool"), dict):
            # A database that does not answer fails the loop's next statement within seconds
            # (and its runs are stopped), instead of holding every run's records for 30 s.
            options["pool"] = {**options["pool"], "timeout": 3}


class Command(BaseCommand):
    help = "Run background executions: up to AGENTFLOW_WORKER_CONCURRENCY at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="runs at once (default: AGENTFLOW_WORKER_CONCURRENCY)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        _commit_without_waiting_for_disk()
        concurrency = options["concurrency"] or settings.AGENTFLOW_WORKER_CONCURRENCY
        poll = settings.AGENTFLOW_WORKER_POLL
        worker = RunWorker(
            capacity=concurrency,
            poll=poll if listens() else min(poll, SQLITE_POLL),
            grace=settings.AGENTFLOW_WORKER_GRACE,
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop.set())
        sampling = sample_every_interval(worker.stop)  # the admin's health dashboard
        worker.serve()
        sampling.join(timeout=5)
