"""A stored workflow run as one node of another, inside the same run (SPEC §2 `workflow`).

The sub-workflow runs what validation pinned (runtime.validation_workflows.SubWorkflow), with
the caller's RunContext seen through a copy: the same budget, queues, cancel gate, redactor and
step count (its nodes count toward the run's `max_steps`), its node events traced as
`<this node>/<its node>`. Its tokens and cost add to the run's through this node's update; the
node's own trace row carries none, so the run's totals are the sum of its trace rows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from langgraph.errors import GraphRecursionError

from runtime.context import MaxStepsExceeded, RunContext
from runtime.errors import NodeError, NodeTimeout
from runtime.events import NodeFinished, NodeStarted, RunObserver
from runtime.node_metadata import WorkflowMetadata
from runtime.nodes.base import Node, NodeOutput, State
from runtime.sandbox.limits import evaluation_deadline
from runtime.state import initial_state
from runtime.validation_workflows import SubWorkflow


@dataclass(frozen=True)
class PrefixedObserver:
    """Reports a sub-workflow's node events under its caller's node id."""

    inner: RunObserver
    prefix: str

    async def node_started(self, event: NodeStarted) -> None:
        await self.inner.node_started(replace(event, node_id=self.prefix + event.node_id))

    async def node_finished(self, event: NodeFinished) -> None:
        await self.inner.node_finished(replace(event, node_id=self.prefix + event.node_id))

    async def node_token(self, node_id: str, delta: str) -> None:
        await self.inner.node_token(self.prefix + node_id, delta)


class WorkflowNode(Node):
    kind = "workflow"
    result_key = None
    meta: WorkflowMetadata

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        sub = self.meta.child
        if not isinstance(sub, SubWorkflow):
            raise NodeError(
                f"Node '{self.node_id}' calls a workflow that was not resolved when the spec was "
                "validated; run it through the API.",
                node_id=self.node_id,
            )
        given = await self.evaluate(lambda: self._input(state))
        ctx.note_input(self.node_id, given)
        final = await self._run_child(sub, given, ctx)
        tokens, cost = int(final.get("tokens_used") or 0), float(final.get("cost") or 0.0)
        updates: dict[str, Any] = {
            key: final.get(theirs) for key, theirs in self.meta.output.items()
        }
        # The run's totals take the sub-workflow's; this node's trace row takes none of it
        # (its nodes' rows hold it), so that the rows add up to the run.
        updates |= {"tokens_used": tokens, "cost": cost}
        errors = [self._prefixed(record) for record in final.get("errors") or []]
        if errors:
            updates["errors"] = errors
        details = {
            "workflow": {"id": sub.workflow_id, "name": sub.name, "version": sub.version},
            "tokens_inside": tokens,
            "cost_inside": cost,
        }
        return NodeOutput(result=final.get("final_output"), updates=updates, details=details)

    def _input(self, state: State) -> dict[str, Any]:
        return {
            key: self.render(source, state) if "{" in source else state.get(source)
            for key, source in self.meta.input.items()
        }

    def _prefixed(self, record: Any) -> Any:
        if isinstance(record, Mapping) and record.get("node_id"):
            return {**record, "node_id": f"{self.node_id}/{record['node_id']}"}
        return record

    async def _run_child(
        self, sub: SubWorkflow, given: Mapping[str, Any], ctx: RunContext
    ) -> dict[str, Any]:
        from runtime.compiler import compile_workflow  # the compiler imports every node type

        child = compile_workflow(sub.validated, state_keys=given.keys())
        # No checkpointer of its own, nor the caller's: a resumed run runs this node again.
        graph = child.graph.copy(update={"checkpointer": False})
        inner = _inner_context(ctx, f"{self.node_id}/", given)
        steps, chars = ctx.steps, ctx.input_chars
        start = initial_state(given)
        limit = child.timeout_seconds
        # Templates and rules evaluated inside stop themselves at its deadline too.
        until = time.monotonic() + limit if limit else None
        try:
            inner.count_initial(start)
            with evaluation_deadline(until):
                async with asyncio.timeout(limit):
                    final = await graph.ainvoke(
                        start, config={"recursion_limit": 2 * ctx.max_steps + 16}, context=inner
                    )
        except (TimeoutError, NodeError) as error:
            if until is not None and time.monotonic() >= until:
                raise NodeTimeout(
                    f"The workflow '{sub.name}' took longer than its limits.timeout_seconds "
                    f"({limit:g} s).",
                    node_id=self.node_id,
                ) from None
            if isinstance(error, NodeError):
                error.node_id = f"{self.node_id}/{error.node_id}" if error.node_id else self.node_id
            raise
        except GraphRecursionError:
            raise MaxStepsExceeded(
                f"The workflow '{sub.name}' went past the run's max_steps.", node_id=self.node_id
            ) from None
        finally:
            ctx.steps += inner.steps - steps
            ctx.input_chars += inner.input_chars - chars
            ctx._shared = ctx._shared or inner._shared
        return dict(final)


def _inner_context(ctx: RunContext, prefix: str, given: Mapping[str, Any]) -> RunContext:
    """The caller's context for a sub-workflow: shared budget, limiter, cancel gate, redactor
    and the adapters it opens (closed with the run's); its own node ids, state and node slots
    (the caller's node holds one of the run's slots while its sub-workflow runs)."""
    return replace(
        ctx,
        observer=PrefixedObserver(ctx.observer, prefix),
        initial=dict(given),
        state_bytes=0,
        rate_waits={},
        inputs={},
        _adapters={},
        _slots=None,
    )
