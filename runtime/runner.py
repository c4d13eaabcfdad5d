"""Run a compiled workflow to the end and say how it went (SPEC §5)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.errors import GraphRecursionError

from runtime.compiler import CompiledWorkflow
from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.providers.preload import preload
from runtime.state import final_state, initial_state

SUCCEEDED, FAILED, TIMED_OUT = "succeeded", "failed", "timed_out"


@dataclass(frozen=True)
class RunOutcome:
    status: str
    final_state: dict[str, Any]
    """The state at the end; for a failed or timed-out run, as far as it got."""
    error: dict[str, Any] | None
    """`{"code", "message", "node_id"}` when the run did not succeed."""
    execution_time: float

    @property
    def tokens_used(self) -> int:
        return int(self.final_state.get("tokens_used") or 0)

    @property
    def cost(self) -> float:
        return float(self.final_state.get("cost") or 0.0)


def _limit(workflow: CompiledWorkflow, asked: float | None) -> float | None:
    bounds = [t for t in (workflow.timeout_seconds, asked) if t]
    return min(bounds) if bounds else None


async def run_workflow(
    workflow: CompiledWorkflow,
    values: Mapping[str, Any],
    ctx: RunContext,
    *,
    timeout_seconds: float | None = None,
) -> RunOutcome:
    """Run from `values` (the initial state) to the end, within the spec's and the caller's
    timeouts. Never raises for a failing run: the outcome says what happened."""
    ctx.max_steps = workflow.max_steps
    ctx.initial = dict(values)
    state: dict[str, Any] = initial_state(values)
    limit = _limit(workflow, timeout_seconds)
    status, error = SUCCEEDED, None
    config: Any = {"recursion_limit": workflow.recursion_limit}
    await asyncio.to_thread(preload, workflow.source_kinds)
    start = ctx.clock()
    try:
        async with asyncio.timeout(limit):
            async for snapshot in workflow.graph.astream(
                state, config=config, context=ctx, stream_mode="values"
            ):
                state = snapshot
    except TimeoutError:
        status = TIMED_OUT
        error = {
            "code": "timeout",
            "message": f"The run took longer than its {limit:g} s limit and was stopped.",
            "node_id": None,
        }
    except NodeError as exc:
        status, error = FAILED, {"code": exc.code, "message": exc.message, "node_id": exc.node_id}
    except GraphRecursionError:
        status = FAILED
        error = {
            "code": "max_steps",
            "message": "The run exceeded limits.max_steps.",
            "node_id": None,
        }
    except Exception as exc:  # a failure outside any node (a LangGraph error): still an outcome
        status = FAILED
        error = {
            "code": "internal_error",
            "message": f"{type(exc).__name__}: {exc}",
            "node_id": None,
        }
    finally:
        await ctx.aclose()  # pools and clients belong to this event loop
    return RunOutcome(status, final_state(state), error, round(ctx.clock() - start, 6))
