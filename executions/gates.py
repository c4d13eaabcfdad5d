"""Whether a worker's run may start its next node (`RunContext.go_on`).

Answered on a thread and a database connection of its own, in batches: one query for every run
asking at that moment. The query reads the cancel requests committed before it, and the cancel
API commits before it answers, so no node starts after a cancel was accepted; nor in a run that
another worker took over. Its own thread, because a node's start must not wait behind the
worker's trace writes (one thread answering both made every node of a chain wait for the
previous one's trace row).
"""

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from django.db import connections

from executions.models import Execution, Status
from executions.runner import GoOn

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Refused:
    """Runs told not to start a node: a cancel was asked, or they are no longer held here."""

    cancelled: list[str]
    lost: list[str]


@dataclass(frozen=True)
class GatesFailed:
    """The cancel requests could not be read: the database is gone."""


class Gates(threading.Thread):
    """Answers the `GoOn`s put on `asks`; what it refuses, and its failures, go to `report`."""

    def __init__(
        self, worker: str, report: "queue.Queue[object]", stopping: Callable[[str], bool]
    ) -> None:
        super().__init__(name="agentflow-run-gates", daemon=True)
        self.worker, self.report, self.stopping = worker, report, stopping
        self.asks: queue.Queue[object] = queue.Queue()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if asks := _take(self.asks, 0.5):
                    self.answer(asks)
        finally:
            connections.close_all()

    def answer(self, asks: list[GoOn]) -> None:
        held = self._held({ask.execution_id for ask in asks})
        cancelled: list[str] = []
        lost: list[str] = []
        for ask in asks:
            state = held.get(ask.execution_id)  # None: not held here; True: a cancel was asked
            go = state is False and not self.stopping(ask.execution_id)
            ask.answer(go)
            if not go:
                (lost if state is None else cancelled).append(ask.execution_id)
        if cancelled or lost:
            self.report.put(Refused(cancelled, lost))

    def _held(self, ids: set[str]) -> dict[str, bool]:
        """Execution id -> cancel requested, for the runs of `ids` this worker still holds."""
        try:
            held = Execution.objects.filter(pk__in=ids, worker=self.worker, status=Status.RUNNING)
            return dict(held.values_list("pk", "cancel_requested"))
        except Exception:
            logger.exception("run_gates_database_error", worker=self.worker)
            with contextlib.suppress(Exception):
                connections["default"].close()
            self.report.put(GatesFailed())
            return {}


def _take(asks: "queue.Queue[object]", timeout: float) -> list[GoOn]:
    """What is asking: wait up to `timeout` for the first, then take all there is."""
    found: list[Any] = []
    try:
        found.append(asks.get(timeout=timeout))
    except queue.Empty:
        return []
    with contextlib.suppress(queue.Empty):
        while len(found) < 10_000:
            found.append(asks.get_nowait())
    return found
