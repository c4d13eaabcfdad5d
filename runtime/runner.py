"""Run a compiled workflow to the end and say how it went (SPEC §5)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from langgraph.errors import GraphRecursionError
from langgraph.types import Command

from runtime import telemetry
from runtime.compiler import CompiledWorkflow
from runtime.context import RunContext, RunStopped
from runtime.errors import FinalStateTooLarge, NodeError, ResourceLimit
from runtime.events import NullObserver
from runtime.limits import SETTINGS, RunLimits
from runtime.providers.preload import missing, preload
from runtime.redaction import RedactingObserver
from runtime.sandbox.limits import evaluation_deadline
from runtime.state import FinalState, bounded_final_state, initial_state

SUCCEEDED, FAILED, TIMED_OUT, CANCELLED = "succeeded", "failed", "timed_out", "cancelled"
WAITING = "waiting"
"""Not an end: a node asked a person (LangGraph's interrupt); the run goes on when answered."""
INTERRUPT_KEY = "__interrupt__"


@dataclass(frozen=True)
class RunOutcome:
    status: str
    final_state: dict[str, Any]
    """The state at the end; for a failed or timed-out run, as far as it got."""
    error: dict[str, Any] | None
    """`{"code", "message", "node_id"}` when the run did not succeed."""
    execution_time: float
    interrupted: bool = False
    """It stopped because its checkpoint store went away (the database): not a failure of the
    run, which resumes from its last checkpoint once its caller can reach the store again."""
    waiting: dict[str, Any] | None = None
    """Status WAITING: what the node asks (its interrupt's value) and `interrupt_id`, the key
    of the answer when the run is resumed (`run_workflow(resume=…)`)."""

    @property
    def tokens_used(self) -> int:
        return int(self.final_state.get("tokens_used") or 0)

    @property
    def cost(self) -> float:
        return float(self.final_state.get("cost") or 0.0)


@functools.cache
def _store_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [sqlite3.OperationalError]
    with contextlib.suppress(ImportError):
        import psycopg

        found += [psycopg.OperationalError, psycopg.InterfaceError]  # PoolTimeout is one too
    return tuple(found)


def store_lost(exc: BaseException) -> bool:
    """A checkpointed run's error outside every node (node errors are NodeErrors by then) that
    says its checkpoint store went away: a lost connection or pool, not a bug."""
    return isinstance(exc, _store_errors())


def _limit(workflow: CompiledWorkflow, asked: float | None) -> float | None:
    bounds = [t for t in (workflow.timeout_seconds, asked) if t]
    return min(bounds) if bounds else None


def _error(code: str, message: str, node_id: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "node_id": node_id}


async def _start(
    workflow: CompiledWorkflow,
    state: dict[str, Any],
    checkpointer: Any,
    thread_id: str | None,
    resume: tuple[str, Any] | None = None,
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """The graph, config and input for this run; a checkpointed run that already began resumes
    (input None) from its last checkpoint, with the state it had reached. A run waiting on the
    interrupt `resume` names is given its answer; an answer to an interrupt no longer pending
    (the node took it before a worker was lost) is not given again."""
    config: Any = {"recursion_limit": workflow.recursion_limit}
    if checkpointer is None:
        return workflow.graph, config, state, state
    graph = workflow.graph.copy(update={"checkpointer": checkpointer})
    config["configurable"] = {"thread_id": thread_id}
    saved = await checkpointer.aget_tuple(config)
    if saved is None:
        return graph, config, state, state
    snapshot = await graph.aget_state(config)
    pending = {interrupt.id for interrupt in snapshot.interrupts}
    inputs: Command[Any] | None = None
    if resume and resume[0] in pending:
        inputs = Command(resume={resume[0]: resume[1]})
    return graph, config, inputs, dict(snapshot.values) or state


async def run_workflow(
    workflow: CompiledWorkflow,
    values: Mapping[str, Any],
    ctx: RunContext,
    *,
    timeout_seconds: float | None = None,
    checkpointer: Any = None,
    thread_id: str | None = None,
    resume: tuple[str, Any] | None = None,
    spent: float = 0.0,
) -> RunOutcome:
    """Run from `values` (the initial state) to the end, within the spec's and the caller's
    timeouts. Never raises for a failing run: the outcome says what happened. Its log lines
    carry `ctx.labels`; when tracing, it is one span continuing `ctx.trace_parent`.

    Args:
        checkpointer: a LangGraph checkpoint saver; with it, every superstep is saved under
            `thread_id`, and a run whose thread already has a checkpoint resumes from it (a node
            whose result was saved is not run again). A node that asks a person (an approval)
            needs one: the run then ends WAITING, its state kept in the checkpoint.
        resume: (interrupt id, answer): the answer to the question the run waits on.
        spent: seconds the run already ran before it waited: they count against its
            timeouts, and its execution time adds them up.
    """
    with telemetry.run_scope(workflow.spec.name, ctx.labels, ctx.trace_parent) as span:
        outcome = await _run(
            workflow, values, ctx, timeout_seconds, checkpointer, thread_id, resume, spent
        )
        telemetry.run_ended(span, outcome.status, outcome.error)
        return outcome


async def _run(
    workflow: CompiledWorkflow,
    values: Mapping[str, Any],
    ctx: RunContext,
    timeout_seconds: float | None,
    checkpointer: Any,
    thread_id: str | None,
    resume: tuple[str, Any] | None = None,
    spent: float = 0.0,
) -> RunOutcome:
    ctx.max_steps = workflow.max_steps
    ctx.initial = dict(values)
    # Nothing to redact for an observer that drops every event (in-process runs, benchmarks).
    if not isinstance(ctx.observer, RedactingObserver | NullObserver):
        ctx.observer = RedactingObserver(ctx.observer, ctx.redactor)
    limit = _limit(workflow, timeout_seconds)
    left = max(limit - spent, 0.001) if limit else None  # time used before a wait counts
    status, error, interrupted, waiting = SUCCEEDED, None, False, None
    graph, config, inputs, state = workflow.graph, cast(Any, {}), None, initial_state(values)
    start = ctx.clock()
    # The timeout counts from here, when the run was taken up: imports and the checkpoint lookup
    # are part of it. Node tasks inherit the sandbox's deadline: no evaluation outlives it.
    deadline = time.monotonic() + left if left else None
    try:
        # Inside the try: a cancel or failure while imports or the checkpoint lookup are still
        # going ends as an outcome too, never as an exception out of the run.
        async with asyncio.timeout(left):
            if missing(workflow.source_kinds):  # a thread only when there is something to import
                await asyncio.to_thread(preload, workflow.source_kinds)
            graph, config, inputs, state = await _start(
                workflow, state, checkpointer, thread_id, resume
            )
            ctx.count_initial(state)
            start = ctx.clock()
            with evaluation_deadline(deadline):
                async for snapshot in graph.astream(
                    inputs, config=config, context=ctx, stream_mode="values"
                ):
                    if INTERRUPT_KEY in snapshot:  # a node asked a person: the stream ends
                        waiting = _waiting(snapshot[INTERRUPT_KEY])
                        snapshot = {k: v for k, v in snapshot.items() if k != INTERRUPT_KEY}
                    state = snapshot
        if waiting is not None and checkpointer is None:  # nothing would keep its state
            status, error, waiting = FAILED, _no_waiting(waiting), None
        elif waiting is not None:
            status = WAITING
    except TimeoutError:
        status = TIMED_OUT
        error = _error(
            "timeout", f"The run took longer than its {limit:g} s limit and was stopped."
        )
    except (asyncio.CancelledError, RunStopped):
        status = CANCELLED
        error = _error("cancelled", "The run was cancelled.")
    except NodeError as exc:
        status, error = FAILED, _error(exc.code, exc.message, exc.node_id)
    except GraphRecursionError:
        status, error = FAILED, _error("max_steps", "The run exceeded limits.max_steps.")
    except (MemoryError, RecursionError) as exc:  # in LangGraph's reducers, between nodes
        status, error = FAILED, _error(ResourceLimit.code, _resource_message(exc))
    except Exception as exc:  # a failure outside any node (a LangGraph error): still an outcome
        status, error = FAILED, _error("internal_error", f"{type(exc).__name__}: {exc}")
        interrupted = checkpointer is not None and store_lost(exc)
    finally:
        await ctx.aclose()  # pools and clients (kept for the next run on the runtime loop)
    final = bounded_final_state(state, ctx.limits.max_final_state_bytes)
    if final.omitted and error is None:
        status, error = FAILED, _final_state_error(final, ctx.limits)
    # Node updates were redacted as they were made; the initial state and errors raised outside
    # any node (a LangGraph failure quoting a value) are redacted here.
    redact = ctx.redactor.value
    took = round(ctx.clock() - start + spent, 6)
    return RunOutcome(
        status, redact(final.values), redact(error), took, interrupted, redact(waiting)
    )


def _no_waiting(waiting: dict[str, Any]) -> dict[str, Any]:
    node_id = waiting.get("node_id")
    return _error(
        "approval_needs_background",
        f"Node '{node_id}' asks a person for approval, which only a background run (mode "
        "async) can wait for.",
        node_id,
    )


def _waiting(interrupts: Any) -> dict[str, Any]:
    """The first question the run waits on (parallel ones are asked one after the other)."""
    first = interrupts[0]
    value = first.value if isinstance(first.value, dict) else {"question": first.value}
    return {**value, "interrupt_id": first.id}


def _resource_message(exc: BaseException) -> str:
    what = "memory" if isinstance(exc, MemoryError) else "nesting depth"
    return (
        f"The run needed more {what} than the server gives one run, between its nodes; keep "
        "fewer or smaller results in its state."
    )


def _final_state_error(final: FinalState, limits: RunLimits) -> dict[str, Any]:
    shown = ", ".join(final.omitted[:10]) + (", …" if len(final.omitted) > 10 else "")
    if not final.size:
        return _error(
            FinalStateTooLarge.code,
            f"The run's final state is nested too deeply to return; its values were left out "
            f"(set to null): {shown}. Keep flatter results in the state.",
        )
    return _error(
        FinalStateTooLarge.code,
        f"The run's final state is {final.size:,} bytes, over the {limits.max_final_state_bytes:,}"
        f"-byte limit on what a run returns ({SETTINGS['max_final_state_bytes']}); these values "
        f"were left out of it (set to null): {shown}. Keep fewer or smaller results in the state.",
    )
