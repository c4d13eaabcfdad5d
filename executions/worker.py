"""The run worker (`manage.py runworker`): many background runs at once in one process.

Runs mostly wait: on a provider, a database, a rate limit. A worker process that held one run
from start to end (a django-q2 task) spent a whole process waiting for each, which capped
AgentFlow at as many runs as it had processes. Here every run of the process is a task on the
process's runtime loop (`runtime.loop`), up to `AGENTFLOW_WORKER_CONCURRENCY` at once, and one
thread (the one calling `serve`) does all of their database work, in batches:

- claims queued runs from the executions table (`SELECT … FOR UPDATE SKIP LOCKED`, oldest
  first, only as many as it has free slots: a full worker takes nothing and the others do),
  woken by PostgreSQL's NOTIFY when a run is queued (`executions.wakeup`), and looks every
  `AGENTFLOW_WORKER_POLL` seconds anyway;
- writes the trace of every run as it arrives (`TraceWriter`: a few statements per batch
  whatever the number of runs);
- before any node of its runs starts, the run asks whether it may (`executions.gates`: one
  query on a thread of its own answers every run asking), so no node starts after a cancel was
  accepted (the API commits the request before it answers), nor in a run another worker took
  over;
- every TICK: one query for the cancel requests of all its runs (a node in flight when a cancel
  comes is stopped within half a second), and every HEARTBEAT_EVERY one UPDATE beating for all
  of them; a run that another worker took over (its heartbeat had gone stale) is stopped here;
- takes over runs whose worker died (heartbeat stale): they resume from their last checkpoint,
  saved after every step through one connection pool for the whole process;
- on SIGTERM it stops claiming, lets its runs finish for `AGENTFLOW_WORKER_GRACE` seconds,
  then hands the rest back (their heartbeat set stale, the other workers woken) for another
  worker to resume at once.

CPU-heavy tenant work (templates, rules) runs in the sandbox's thread pool with deadlines, so it
does not stall the other runs on the loop.
"""

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agentflow_site.observability import metrics
from executions.approvals import execution_wait, waits_expire
from executions.checkpoints import SharedSaver
from executions.gates import Gates, GatesFailed, Refused
from executions.lifecycle import log_ended, log_started
from executions.models import Execution, ExecutionEvent, Status, Worker
from executions.recording import TraceWriter
from executions.runner import CallerThread, Event, TokenEvent, _Call, go_on_asking
from executions.services import (
    HEARTBEAT_EVERY,
    _claim,
    _finish,
    _run_timeout,
    ending,
    execution_context,
    execution_failure_report,
    execution_profiler,
    heartbeat_stale,
    stale_runs,
    worker_name,
)
from executions.wakeup import Listener, listens, notify_workers
from executions.webhooks import webhooks_wake
from runtime import loop
from runtime.compiler import compile_workflow
from runtime.events import NodeFinished, NodeStarted
from runtime.providers.preload import preload
from runtime.runner import CANCELLED, FAILED, WAITING, RunOutcome, run_workflow
from workflows.services import workflow_validate

logger = structlog.get_logger(__name__)

TICK = 0.25
"""Seconds between cancel checks."""
STOP_WAIT = 3.0
"""Seconds a stopping worker waits for the runs it hands back to stop, after its grace."""
MAX_DELIVERIES = 5
"""A run taken up this many times (each after a lost worker, or one that handed it back) is
given up as failed: a run that kills every worker it meets stops at 4 of them."""


_FAILED = object()
"""What `_guarded` gives back when the database work failed."""


def _ok(result: Any) -> Any:
    return None if result is _FAILED else result


@dataclass(frozen=True)
class _Wake:
    pass


@dataclass(frozen=True)
class _Done:
    execution_id: str


WAKE = _Wake()


class _TaggedObserver:
    """A run's observer on the runtime loop: its events go to the worker's inbox, tagged."""

    def __init__(self, inbox: "queue.Queue[object]", execution_id: str) -> None:
        self.inbox, self.execution_id = inbox, execution_id

    async def node_started(self, event: NodeStarted) -> None:
        self.inbox.put((self.execution_id, event))

    async def node_finished(self, event: NodeFinished) -> None:
        self.inbox.put((self.execution_id, event))

    async def node_token(self, node_id: str, delta: str) -> None:
        self.inbox.put((self.execution_id, TokenEvent(node_id, delta)))


@dataclass
class _Run:
    execution: Execution
    redact: Any
    digest: str
    future: "concurrent.futures.Future[RunOutcome]"
    task: "asyncio.Task[Any] | None" = None
    cancelling: bool = False
    lost: bool = False


@dataclass
class RunWorker:
    """Drives up to `capacity` runs at once; `serve()` until `stop` is set."""

    capacity: int = 50
    name: str = field(default_factory=worker_name)
    poll: float = 2.0
    grace: float = 10.0
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.inbox: queue.Queue[object] = queue.Queue()
        self.runs: dict[str, _Run] = {}
        self.writer = TraceWriter()
        self.caller = CallerThread()
        self.saver = SharedSaver(settings.AGENTFLOW_CHECKPOINT_POOL_SIZE)
        self.claims = 0
        self.gates = Gates(self.name, self.inbox, self._stopping)

    # --- the loop ---------------------------------------------------------------------------

    def serve(self) -> None:
        preload()  # what web processes import at start: a first run pays nothing
        loop.runtime_loop()
        listener = Listener(lambda: self.inbox.put(WAKE), self.stop) if listens() else None
        if listener:
            listener.start()
        self._register()
        self.gates.start()
        logger.info("run_worker_started", worker=self.name, capacity=self.capacity)
        next_tick = next_poll = next_beat = time.monotonic()
        stopping_since: float | None = None
        with self.caller.serving(self.inbox):
            while True:
                if self.stop.is_set() and stopping_since is None:
                    stopping_since = time.monotonic()
                    logger.info("run_worker_stopping", worker=self.name, running=len(self.runs))
                if stopping_since is not None and (
                    not self.runs or time.monotonic() - stopping_since > self.grace
                ):
                    break
                wake = min(next_tick, next_poll)
                items = self._take(max(0.0, wake - time.monotonic()))
                woken = self._handle(items)
                now = time.monotonic()
                if stopping_since is None and (woken or now >= next_poll):
                    self._claim_runs()
                    next_poll = time.monotonic() + self.poll
                if now >= next_tick:
                    self._tick(beat=now >= next_beat)
                    if now >= next_beat:
                        next_beat = now + HEARTBEAT_EVERY.total_seconds()
                    next_tick = time.monotonic() + TICK
        self.gates.stop.set()  # what asks now waits: the hand-back stops it
        self._hand_back()
        Worker.objects.filter(pk=self.name).delete()
        logger.info("run_worker_stopped", worker=self.name)

    def _take(self, timeout: float) -> list[object]:
        """What arrived: wait up to `timeout` for the first item, then take all there is."""
        try:
            items = [self.inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while len(items) < 10_000:
                items.append(self.inbox.get_nowait())
        return items

    def _handle(self, items: list[object]) -> bool:
        """Answer calls, write events, end finished runs; True when a claim is due."""
        woken = False
        entries: list[tuple[str, Event]] = []
        done: list[str] = []
        for item in items:
            if isinstance(item, _Call):
                item.run()
            elif isinstance(item, Refused):
                self._refused(item)
            elif isinstance(item, GatesFailed):
                self._pause_all("its runs' cancel requests could not be read")
            elif isinstance(item, _Wake):
                woken = True
            elif isinstance(item, _Done):
                done.append(item.execution_id)
            else:
                entries.append(item)  # type: ignore[arg-type]
        if entries and self._guarded(self.writer.write, entries) is _FAILED:
            self._pause_all("its trace could not be written")
        if done:
            self._end([run for execution_id in done if (run := self.runs.pop(execution_id, None))])
            woken = True  # slots are free
        return woken

    def _refused(self, refused: Refused) -> None:
        """Runs the gates told not to start a node: stop them (a lost one's end is not ours)."""
        for execution_id in refused.lost:
            if (run := self.runs.get(execution_id)) is not None:
                run.lost = True
        for execution_id in refused.cancelled + refused.lost:
            self._cancel(execution_id)

    def _stopping(self, execution_id: str) -> bool:
        run = self.runs.get(execution_id)  # read from the gates' thread: one lookup, atomic
        return run is None or run.cancelling

    def _guarded(self, work: Any, *args: Any) -> Any:
        """Database work of the loop: a lost connection is dropped and the next call reopens
        it; the error is logged, not fatal to the worker or its other runs."""
        try:
            return work(*args)
        except Exception:
            logger.exception("run_worker_database_error", worker=self.name)
            close_old_connections()
            with contextlib.suppress(Exception):
                from django.db import connection

                connection.close()
            return _FAILED

    def _pause_all(self, why: str) -> None:
        """The database is gone: stop every run here at once rather than call nodes with
        nothing recorded. Their rows stay `running`; once their heartbeat is stale a worker
        (this one too) takes each over and resumes it from its last checkpoint, so no answered
        node is called again."""
        paused = [run for run in self.runs.values() if not run.lost]
        if paused:
            logger.warning("run_worker_pausing_runs", worker=self.name, runs=len(paused), why=why)
        for run in paused:
            run.lost = True
            self._cancel(run.execution.pk)

    # --- claims -----------------------------------------------------------------------------

    def _claim_runs(self) -> None:
        self._guarded(waits_expire)  # an expired wait that takes a branch is queued: claim it
        free = self.capacity - len(self.runs)
        if free <= 0:
            return
        claimed = _ok(self._guarded(claim_queued, self.name, free)) or []
        if len(claimed) < free:
            claimed += _ok(self._guarded(self._take_over_lost, free - len(claimed))) or []
        if not claimed:
            return
        found = _ok(
            self._guarded(lambda: Execution.objects.select_related("tenant").in_bulk(claimed))
        )
        for execution_id in claimed:
            self.claims += 1
            execution = (found or {}).get(execution_id)
            if execution is not None:
                self._start(execution)

    def _take_over_lost(self, limit: int) -> list[str]:
        """Runs whose worker stopped beating: end those lost too often, resume the others."""
        stale = stale_runs().exclude(pk__in=list(self.runs))  # its own paused ones too
        give_up_lost(stale)
        candidates = stale.filter(deliveries__lt=MAX_DELIVERIES, mode="async")
        taken = []
        for execution_id in candidates.values_list("pk", flat=True)[:limit]:
            if _claim(execution_id, self.name):
                taken.append(execution_id)
        return taken

    def _start(self, execution: Execution) -> None:
        execution_id = execution.pk
        try:
            validated = workflow_validate(spec=execution.spec, tenant=execution.tenant)
            if not validated.valid:
                error = {"code": "invalid_workflow", "message": validated.errors[0].message}
                _finish(execution, Status.FAILED, None, error, 0, worker=self.name)
                return
            workflow = compile_workflow(validated, state_keys=execution.initial_state.keys())
            ctx = execution_context(execution, self.caller, self.writer)
        except Exception as exc:
            self._crashed(execution_id, exc)
            return
        log_started(execution, worker=self.name)
        ctx.observer = _TaggedObserver(self.inbox, execution_id)
        ctx.go_on = go_on_asking(self.gates.asks, execution_id)
        run = _Run(execution, ctx.redactor.text, workflow.digest, concurrent.futures.Future())
        timeout = _run_timeout(execution.timeout_seconds, background=True)
        around = execution_profiler(execution, self.caller)

        async def main() -> RunOutcome:
            run.task = asyncio.current_task()
            async with self.saver() as saver:
                work = run_workflow(
                    workflow,
                    execution.initial_state,
                    ctx,
                    timeout_seconds=timeout,
                    checkpointer=saver,
                    thread_id=execution.id,
                    resume=_resume(execution),
                    spent=execution.execution_time or 0.0,  # before it waited: not the wait
                )
                return await (around(work) if around else work)

        self.runs[execution_id] = run  # before it can ask the gates about its first node
        run.future = loop.submit(main())
        run.future.add_done_callback(lambda _: self.inbox.put(_Done(execution_id)))

    def _crashed(self, execution_id: str, exc: Exception) -> None:
        logger.exception("execution_crashed", execution_id=execution_id)  # the log is scrubbed
        # No redactor exists yet to clean the exception's text: the row says what, not why.
        error = {"code": "internal_error", "message": "The run could not be started (logged)."}
        with contextlib.suppress(Exception):
            execution = Execution.objects.get(pk=execution_id)
            _finish(execution, Status.FAILED, None, error, 0, worker=self.name)

    # --- ends -------------------------------------------------------------------------------

    def _end(self, runs: list[_Run]) -> None:
        ends = [(run, _outcome(run)) for run in runs]
        for run, outcome in ends:
            if outcome.interrupted and not run.lost:
                logger.warning("run_interrupted_by_database", execution_id=run.execution.pk)
                run.lost = True  # left running: taken up again, from its checkpoint, once stale
        self._guarded(self._record_ends, ends)

    def _record_ends(self, ends: list[tuple[_Run, RunOutcome]]) -> None:
        """The ends of every run that finished since the last look: one transaction."""
        ids = [run.execution.pk for run, _ in ends]
        try:
            self._write_ends(ids, ends)
        finally:
            for execution_id in ids:
                self.writer.forget(execution_id)

    def _write_ends(self, ids: list[str], ends: list[tuple[_Run, RunOutcome]]) -> None:
        with transaction.atomic():
            self.writer.flush_tokens(ids)
            events = [
                event
                for run, outcome in ends
                if not run.lost  # another worker holds it now: its end is theirs to write
                and (event := _ending(run, outcome, self.name))
            ]
            ExecutionEvent.objects.bulk_create(events)
            ended = {event.execution_id for event in events if event.kind == "end"}
            for run, outcome in ends:
                if run.execution.pk in ended:
                    metrics.execution_ended(
                        run.execution, outcome.status, outcome.final_state, outcome.execution_time
                    )
                    log_ended(run.execution, outcome.status, outcome.execution_time, outcome.error)
            webhooks_wake(ended)

    # --- ticks ------------------------------------------------------------------------------

    def _tick(self, *, beat: bool) -> None:
        self._guarded(self.writer.flush_tokens)
        mine = list(self.runs)
        if beat and self._guarded(self._beat, mine) is _FAILED:
            self._pause_all("its heartbeat could not be written")
        if mine:
            asked = self._guarded(
                lambda: list(
                    Execution.objects.filter(pk__in=mine, cancel_requested=True).values_list(
                        "pk", flat=True
                    )
                )
            )
            if asked is _FAILED:
                self._pause_all("its runs' cancel requests could not be read")
            for execution_id in _ok(asked) or []:
                self._cancel(execution_id)

    def _beat(self, mine: list[str]) -> None:
        now = timezone.now()
        if mine:
            held = Execution.objects.filter(pk__in=mine, worker=self.name, status=Status.RUNNING)
            if held.update(heartbeat_at=now) < len(mine):
                still = set(held.values_list("pk", flat=True))
                for execution_id in set(mine) - still:
                    run = self.runs.get(execution_id)
                    if run is not None and not run.lost:
                        run.lost = True  # taken over, or ended by someone else: stop it here
                        self._cancel(execution_id)
        Worker.objects.filter(pk=self.name).update(beat_at=now, running=len(self.runs))

    def _cancel(self, execution_id: str) -> None:
        run = self.runs.get(execution_id)
        if run is None or run.cancelling:
            return
        run.cancelling = True
        task = run.task
        if task is not None:
            loop.runtime_loop().call_soon_threadsafe(task.cancel)
        else:
            run.future.cancel()

    def _register(self) -> None:
        now = timezone.now()
        Worker.objects.update_or_create(
            pk=self.name,
            defaults={"started_at": now, "beat_at": now, "capacity": self.capacity, "running": 0},
        )
        stale = now - heartbeat_stale() - timedelta(minutes=10)
        Worker.objects.filter(beat_at__lt=stale).delete()  # processes long gone

    def _hand_back(self) -> None:
        """Runs still going after the grace period: stop them here, and once they have stopped
        (no checkpoint of theirs is written after this) make them stale and wake the other
        workers, so one resumes them from their last checkpoint at once."""
        if not self.runs:
            return
        mine = list(self.runs)
        logger.warning("run_worker_handing_back", worker=self.name, runs=len(mine))
        for run in self.runs.values():
            run.lost = True
            run.cancelling = False  # cancel each again: a task that was told once may go on
            self._cancel(run.execution.pk)
        concurrent.futures.wait([run.future for run in self.runs.values()], timeout=STOP_WAIT)
        stale = timezone.now() - heartbeat_stale() - timedelta(seconds=1)

        def hand_back() -> None:
            with transaction.atomic():  # the others look when this commits
                Execution.objects.filter(
                    pk__in=mine, worker=self.name, status=Status.RUNNING
                ).update(heartbeat_at=stale)
                notify_workers()

        self._guarded(hand_back)


def _resume(execution: Execution) -> tuple[str, Any] | None:
    """The answer a resumed run carries, keyed by the question (interrupt) it answers."""
    given = execution.answer
    if not given or not given.get("interrupt_id"):
        return None
    answer = {key: given.get(key) for key in ("answer", "comment", "by", "at")}
    return given["interrupt_id"], answer


def _ending(run: _Run, outcome: RunOutcome, worker: str) -> ExecutionEvent | None:
    """The run's end, or its wait (the worker lets go of it: executions.approvals); a run
    asked to stop just as it began to wait ends cancelled."""
    execution_id, status, error = run.execution.pk, outcome.status, outcome.error
    if status == WAITING and outcome.waiting is not None:
        waits = execution_wait(
            execution_id,
            outcome.final_state or None,
            outcome.waiting,
            outcome.execution_time,
            worker=worker,
            spec_digest=run.digest,
        )
        if waits is not None:
            return waits
        status, error = CANCELLED, {"code": "cancelled", "message": "The run was cancelled."}
    return ending(
        execution_id,
        status,
        outcome.final_state or None,
        error,
        outcome.execution_time,
        worker=worker,
        spec_digest=run.digest,
    )


def _outcome(run: _Run) -> RunOutcome:
    try:
        return run.future.result()
    except (concurrent.futures.CancelledError, asyncio.CancelledError):
        error = {"code": "cancelled", "message": "The run was cancelled.", "node_id": None}
        return RunOutcome(CANCELLED, {}, error, 0.0)
    except Exception as exc:  # a bug outside what run_workflow reports as an outcome
        message = run.redact(f"{type(exc).__name__}: {exc}")
        logger.error("execution_crashed", execution_id=run.execution.pk, error=message)
        return RunOutcome(FAILED, {}, {"code": "internal_error", "message": message}, 0.0)


def claim_queued(worker: str, limit: int) -> list[str]:
    """Take up to `limit` queued background runs, oldest first. Rows another worker is taking
    at this moment are skipped, not waited for (PostgreSQL); on SQLite the transaction takes
    the write lock first (IMMEDIATE), so two workers never take the same run."""
    now = timezone.now()
    with transaction.atomic():
        queued = Execution.objects.filter(
            status=Status.QUEUED, mode="async", cancel_requested=False
        ).order_by("created_at")
        ids = list(queued.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        Execution.objects.filter(pk__in=ids, status=Status.QUEUED).update(
            status=Status.RUNNING,
            started_at=Coalesce("started_at", Value(now)),  # an answered wait keeps its start
            heartbeat_at=now,
            worker=worker,
            deliveries=F("deliveries") + 1,
        )
    return ids


LOST_TOO_OFTEN = {"code": "worker_lost", "message": "The run lost its worker too many times."}
SYNC_LOST = {
    "code": "worker_lost",
    "message": "The process running this synchronous run stopped; its caller was answered with "
    "an error, so it is not run again. Start it again, or run it with mode async.",
}


def give_up_lost(stale: Any) -> None:
    """Of `stale` (running runs whose heartbeat went stale), end those that lost their worker
    too often, and synchronous ones: their caller was already answered (or cut off) and a
    re-run would repeat every provider call for nobody."""
    ended = stale.filter(Q(deliveries__gte=MAX_DELIVERIES) | Q(mode="sync"))
    fields = (
        "pk",
        "mode",
        "workflow_id",
        "workflow_name",
        "tenant__slug",
        "created_at",
        "trace_context",
    )
    for execution in ended.select_related("tenant").only(*fields):
        execution_id, mode = execution.pk, execution.mode
        error = SYNC_LOST if mode == "sync" else LOST_TOO_OFTEN
        if Execution.objects.filter(pk=execution_id, status=Status.RUNNING).update(
            status=Status.FAILED, error=error, finished_at=timezone.now()
        ):
            ExecutionEvent.objects.create(
                execution_id=execution_id,
                kind="end",
                data={"status": Status.FAILED, "error": error},
            )
            execution_failure_report(execution_id=execution_id, error=error)
            metrics.execution_ended(execution, Status.FAILED, None, 0)
            log_ended(execution, Status.FAILED, 0, error)
            webhooks_wake([execution_id])
