"""`manage.py sample_metrics`: take this host's health dashboard sample now, or `--loop` at every
interval (for a host that serves web requests but runs no `runworker`, which samples by itself)."""

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from agentflow_site.observability import sampler


class Command(BaseCommand):
    help = "Store a snapshot of this host's metrics for the admin's health dashboard."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--loop", action="store_true", help="keep sampling at every interval until stopped"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["loop"]:
            taken = sampler.sample_if_due()
            self.stdout.write("sampled" if taken else "already sampled in this interval")
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        sampler.sample_every_interval(stop).join()
