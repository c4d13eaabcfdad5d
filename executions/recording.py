"""A run's trace and event stream, written in batches.

A node's start and end, its streamed tokens and the events a client follows arrive one at a
time; written one statement each, a 20-node chain cost 63 INSERTs and 23 UPDATEs. `TraceWriter`
takes whatever has arrived (for one run, or for every run of a worker) and writes it in one
transaction of at most three statements: the new node runs, the node runs that ended since an
earlier batch, and the events. A node that started and ended within one batch is inserted once,
already ended.
"""

import json
import threading
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction

from agentflow_site.observability import metrics
from executions.models import ExecutionEvent, NodeRun, ProviderRecording, Status
from executions.runner import Event, TokenEvent
from runtime.events import NodeFinished, NodeStarted
from runtime.replay import Recorded

Entry = tuple[str, Event]
"""(execution id, what happened)."""

_ENDED_FIELDS = ("status", "duration", "output", "tokens", "cost", "error", "details")


def money(value: float) -> Decimal:
    return Decimal(str(round(value, 8)))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class TraceWriter:
    """Writes node runs and events for any number of runs, a batch at a time, in order."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str, int], NodeRun] = {}
        self._tokens: dict[str, dict[str, list[str]]] = {}
        self._calls: list[ProviderRecording] = []
        self._calls_lock = threading.Lock()

    def keep_call(self, execution_id: str, recorded: Recorded) -> None:
        """A provider call's answer (runtime.replay), written with the next batch: the one its
        node's end comes in. Called from the run's event loop, so it only queues it."""
        row = ProviderRecording(
            execution_id=execution_id,
            node_id=recorded["node_id"],
            digest=recorded["digest"],
            kind=recorded["kind"],
            response=_jsonable(recorded["response"]),
        )
        with self._calls_lock:
            self._calls.append(row)

    def _take_calls(self) -> list[ProviderRecording]:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        return calls

    def write(self, entries: Iterable[Entry]) -> None:
        events: list[ExecutionEvent] = []
        new: list[NodeRun] = []  # a loop's node starts again with the same key: a list
        ended: list[NodeRun] = []
        late: list[tuple[str, NodeFinished]] = []
        for execution_id, event in entries:
            if isinstance(event, TokenEvent):
                by_node = self._tokens.setdefault(execution_id, {})
                by_node.setdefault(event.node_id, []).append(event.delta)
                continue
            events.extend(self._token_events(execution_id))  # a node's tokens before its end
            key = (execution_id, event.node_id, event.attempt)
            if isinstance(event, NodeStarted):
                row = NodeRun(
                    execution_id=execution_id,
                    node_id=event.node_id,
                    node_type=event.node_type,
                    attempt=event.attempt,
                    started_at=event.started_at,
                )
                self._open[key] = row
                new.append(row)
                events.append(_started(execution_id, event))
            elif isinstance(event, NodeFinished):
                metrics.node_finished(event)
                found = self._open.pop(key, None)
                if found is None:  # started before this writer existed (another process)
                    late.append((execution_id, event))
                else:
                    _end(found, event)
                    if found.pk is not None:  # inserted by an earlier batch
                        ended.append(found)
                events.append(_finished(execution_id, event))
        self._save(new, ended, late, events, self._take_calls())

    def flush_tokens(self, execution_ids: Sequence[str] | None = None) -> None:
        """Streamed deltas go out batched: one event per node per flush, not one row each."""
        ids = list(self._tokens) if execution_ids is None else execution_ids
        events = [event for execution_id in ids for event in self._token_events(execution_id)]
        if events:
            ExecutionEvent.objects.bulk_create(events)
        calls = self._take_calls()  # a run's end: none of its calls is left behind
        if calls:
            ProviderRecording.objects.bulk_create(calls)

    def forget(self, execution_id: str) -> None:
        """The run ended: drop what is kept for it (its tokens were flushed)."""
        self._tokens.pop(execution_id, None)
        for key in [key for key in self._open if key[0] == execution_id]:
            del self._open[key]

    def _token_events(self, execution_id: str) -> list[ExecutionEvent]:
        by_node = self._tokens.pop(execution_id, {})
        return [
            ExecutionEvent(
                execution_id=execution_id,
                kind="token",
                data={"node_id": node_id, "delta": "".join(deltas)},
            )
            for node_id, deltas in by_node.items()
        ]

    @staticmethod
    def _save(
        new: list[NodeRun],
        ended: list[NodeRun],
        late: list[tuple[str, NodeFinished]],
        events: list[ExecutionEvent],
        calls: list[ProviderRecording],
    ) -> None:
        if not (new or ended or late or events or calls):
            return
        with transaction.atomic():
            if calls:
                ProviderRecording.objects.bulk_create(calls)
            if new:
                NodeRun.objects.bulk_create(new)
            if ended:
                NodeRun.objects.bulk_update(ended, _ENDED_FIELDS)
            for execution_id, event in late:
                probe = NodeRun(node_id=event.node_id)
                _end(probe, event)
                NodeRun.objects.filter(
                    execution_id=execution_id,
                    node_id=event.node_id,
                    attempt=event.attempt,
                    status=Status.RUNNING,
                ).update(**{field: getattr(probe, field) for field in _ENDED_FIELDS})
            if events:
                ExecutionEvent.objects.bulk_create(events)


def _end(row: NodeRun, event: NodeFinished) -> None:
    row.status = event.status
    row.duration = event.duration
    row.output = _jsonable(event.output)
    row.tokens = event.tokens
    row.cost = money(event.cost)
    row.error = event.error
    row.details = _jsonable(event.details)


def _started(execution_id: str, event: NodeStarted) -> ExecutionEvent:
    data = {
        "node_id": event.node_id,
        "node_type": event.node_type,
        "attempt": event.attempt,
        "started_at": event.started_at.isoformat(),
    }
    return ExecutionEvent(execution_id=execution_id, kind="node_started", data=data)


def _finished(execution_id: str, event: NodeFinished) -> ExecutionEvent:
    data = {
        "node_id": event.node_id,
        "status": event.status,
        "attempt": event.attempt,
        "duration": event.duration,
        "tokens": event.tokens,
        "cost": event.cost,
        "error": event.error,
    }
    return ExecutionEvent(execution_id=execution_id, kind="node_finished", data=data)
