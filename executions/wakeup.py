"""How a queued run reaches a worker at once: PostgreSQL's LISTEN/NOTIFY.

`notify_workers` is called in the transaction that queues the run; PostgreSQL delivers the
notification when (and only if) that transaction commits, so a worker is never woken for a run
it cannot see yet, and a rolled-back request wakes nobody. Each worker listens on its own
connection (`Listener`) and claims from the executions table when woken; it also looks every
few seconds, so a notification lost while its connection was down costs a few seconds, not a
run. On SQLite (one machine, the embedded default) workers look often instead.
"""

import contextlib
import threading
from collections.abc import Callable

import psycopg
import structlog
from django.db import connections

from executions.checkpoints import postgres_conninfo

logger = structlog.get_logger(__name__)

CHANNEL = "agentflow_runs"


def notify_workers() -> None:
    """Wake the workers when the current transaction commits (at once outside one)."""
    connection = connections["default"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])


def listens() -> bool:
    return bool(connections["default"].vendor == "postgresql")


class Listener(threading.Thread):
    """Calls `wake` for every notification, on a connection of its own, until `stop` is set;
    a lost connection is opened again (and `wake` called, for what was missed meanwhile)."""

    def __init__(self, wake: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name="agentflow-run-listener", daemon=True)
        self.wake, self.stop = wake, stop
        self.conninfo = postgres_conninfo(connections["default"].settings_dict)

    def run(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.wake()
                    backoff = 0.5
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.wake()
            except psycopg.Error as exc:
                logger.warning("run_listener_reconnecting", error=str(exc), after_s=backoff)
                with contextlib.suppress(Exception):
                    self.stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
