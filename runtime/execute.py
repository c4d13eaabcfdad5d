"""One node's run inside a workflow: step count, retries, timeout, size limits, events,
`on_error`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from langgraph.errors import GraphInterrupt

from runtime import telemetry
from runtime.context import RunContext, RunStopped
from runtime.errors import InvalidRequest, NodeError, NodeTimeout, ResourceLimit
from runtime.events import NodeFinished, NodeStarted
from runtime.node_input import MAX_INPUT_CHARS, kept_input, left_out
from runtime.nodes.base import Node, NodeOutput, State
from runtime.policies import NO_RETRY, RetryPolicy, retrying
from runtime.sandbox.limits import evaluation_deadline


class NodeStopped(NodeError):
    """The run was cancelled while the node ran (its sub-workflow could start no more nodes)."""

    code = "cancelled"


class InternalNodeError(NodeError):
    """A node failed in a way it does not name (a bug or an unexpected library error)."""

    code = "internal_error"


def _policy(node: Node) -> RetryPolicy:
    retry = node.meta.retry
    return RetryPolicy(**retry.model_dump()) if retry is not None else NO_RETRY


async def execute_node(node: Node, node_type: str, state: State, ctx: RunContext) -> dict[str, Any]:
    """Run `node` as SPEC §2 says and return its update to the state, once one of the run's
    `max_parallel_nodes` slots is free (a branch beyond them waits; it does not fail).

    Raises:
        NodeError: the node failed (after its retries) and its `on_error` is `fail`.
    """
    async with ctx.node_slots():
        return await _execute(node, node_type, state, ctx)


async def _execute(node: Node, node_type: str, state: State, ctx: RunContext) -> dict[str, Any]:
    ctx.count_step(node.node_id)
    policy = _policy(node)
    try:
        if policy.max_attempts == 1:  # the common case needs no retry machinery
            update = await _attempt(node, node_type, state, ctx, 1)
        else:
            async for attempt in retrying(policy, ctx.sleep):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    update = await _attempt(node, node_type, state, ctx, number)
    except NodeError as error:
        if node.meta.on_error == "continue":
            return _failed_update(node, error)
        raise
    return update


async def _attempt(
    node: Node, node_type: str, state: State, ctx: RunContext, attempt: int
) -> dict[str, Any]:
    """One attempt, inside its log context (node_id) and, when tracing, its span."""
    if ctx.go_on is not None:  # before the node starts: a cancel accepted now stops it
        await ctx.go_on()
    with telemetry.node_scope(node.node_id, node_type, attempt) as span:
        return await _attempt_in(node, node_type, state, ctx, attempt, span)


async def _attempt_in(
    node: Node, node_type: str, state: State, ctx: RunContext, attempt: int, span: Any
) -> dict[str, Any]:
    started_at, start = ctx.now(), ctx.clock()
    gate_wait = ctx.rate_waits.pop(node.node_id, None)
    ctx.inputs.pop(node.node_id, None)  # an earlier attempt's input is not this one's
    await ctx.observer.node_started(NodeStarted(node.node_id, node_type, attempt, started_at))
    limit = node.meta.timeout_seconds
    try:
        # asyncio's timeout cannot stop work that holds the thread (a template or a rule being
        # evaluated); the sandbox reads the same deadline and stops itself.
        with evaluation_deadline(time.monotonic() + limit if limit else None):
            async with asyncio.timeout(limit) as deadline:
                # Redacted before it is counted, traced or handed to LangGraph: no credential
                # value reaches the state, its checkpoints or the trace, whichever node made it.
                output = _redacted(await node.run(state, ctx), ctx)
                update = _update(node, output)
                ctx.count_update(node.node_id, update)  # before the trace records the result
    except GraphInterrupt:  # the node asked a person (approval): the run waits, from here
        waiting = NodeFinished(
            node.node_id,
            node_type,
            attempt,
            started_at,
            ctx.clock() - start,
            "waiting",
            details=_with_input({}, node, ctx),
        )
        await _finished(ctx, span, waiting)
        raise
    except Exception as exc:  # every failure becomes a NodeError, recorded, then raised
        error = ctx.redactor.error(
            _as_node_error(node, exc, expired=deadline.expired(), limit=limit)
        )
        await _finished(
            ctx,
            span,
            NodeFinished(
                node.node_id,
                node_type,
                attempt,
                started_at,
                ctx.clock() - start,
                "failed",
                error={"code": error.code, "message": error.message},
                details=_with_input(_rate_wait({}, gate_wait), node, ctx),
            ),
        )
        if isinstance(exc, RunStopped):  # refused inside a sub-workflow: the run is cancelled
            raise
        raise error from exc
    await _finished(
        ctx,
        span,
        NodeFinished(
            node.node_id,
            node_type,
            attempt,
            started_at,
            ctx.clock() - start,
            "succeeded",
            output=output.result,
            tokens=output.tokens,
            cost=output.cost,
            details=_with_input(_rate_wait(output.details, gate_wait), node, ctx),
        ),
    )
    return update


async def _finished(ctx: RunContext, span: Any, event: NodeFinished) -> None:
    """The attempt's end: logged once (INFO, with its duration), on its span, then observed."""
    telemetry.node_finished(span, event)
    await ctx.observer.node_finished(event)


def _redacted(output: NodeOutput, ctx: RunContext) -> NodeOutput:
    redact = ctx.redactor.value
    return replace(
        output,
        result=redact(output.result),
        updates=redact(output.updates),
        details=redact(output.details),
    )


def _rate_wait(details: Mapping[str, Any], gate_wait: float | None) -> dict[str, Any]:
    """The node's trace details; `rate_wait_seconds` adds its queue gate's wait to its own."""
    waits = [w for w in (gate_wait, details.get("rate_wait_seconds")) if w is not None]
    merged = dict(details)
    if waits:
        merged["rate_wait_seconds"] = round(sum(waits), 6)
    return merged


def _with_input(details: dict[str, Any], node: Node, ctx: RunContext) -> dict[str, Any]:
    """The details with what the attempt was given, when its node noted it: redacted (the
    credentials it read are known by now) and bounded."""
    if node.node_id not in ctx.inputs:
        return details
    given = ctx.inputs.pop(node.node_id)
    cap = ctx.limits.max_recorded_input_chars
    room = cap - ctx.input_chars
    if room <= 0:
        return details | {"input": left_out(cap)}
    kept, chars = kept_input(given, ctx.redactor.value, min(MAX_INPUT_CHARS, room))
    ctx.input_chars += chars
    return details | {"input": kept}


def _as_node_error(node: Node, exc: Exception, *, expired: bool, limit: float | None) -> NodeError:
    if expired:
        return NodeTimeout(
            f"Node '{node.node_id}' took longer than its timeout_seconds ({limit:g} s).",
            node_id=node.node_id,
        )
    if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:  # anyio's task groups
        inner = exc.exceptions[0]
        if isinstance(inner, Exception):
            return _as_node_error(node, inner, expired=False, limit=limit)
    if isinstance(exc, NodeError):
        exc.node_id = exc.node_id or node.node_id
        return exc
    named = _named(node.node_id, exc)
    if named is not None:
        return named
    message = f"Node '{node.node_id}' failed unexpectedly: {type(exc).__name__}: {exc}"
    return InternalNodeError(message, node_id=node.node_id)


def _named(node_id: str, exc: Exception) -> NodeError | None:
    """A named error for failures a spec or its input can cause anywhere in a node's work."""
    if isinstance(exc, RunStopped):
        return NodeStopped(f"Node '{node_id}' stopped: the run was cancelled.", node_id=node_id)
    if isinstance(exc, MemoryError):
        return ResourceLimit(
            f"Node '{node_id}' needed more memory than the server has for it; give it less to "
            "do (a shorter prompt or template, fewer rows, a smaller result).",
            node_id=node_id,
        )
    if isinstance(exc, RecursionError):
        return ResourceLimit(
            f"Node '{node_id}' met a value nested too deeply to process (lists or objects inside "
            "one another thousands of levels down); flatten it.",
            node_id=node_id,
        )
    if isinstance(exc, OverflowError):
        return ResourceLimit(
            f"Node '{node_id}' met a number too large to handle ({exc}); use a smaller one.",
            node_id=node_id,
        )
    if isinstance(exc, UnicodeEncodeError):
        char = exc.object[exc.start : exc.start + 1]
        return InvalidRequest(
            f"Node '{node_id}' could not encode the character {char!r} (U+{ord(char):04X}) as "
            f"{exc.encoding}: {exc.reason}. Remove it from the node's input, headers or source "
            "settings.",
            node_id=node_id,
        )
    return None


def _result_key(node: Node) -> str | None:
    return node.meta.output_key or node.result_key


def _update(node: Node, output: NodeOutput) -> dict[str, Any]:
    update: dict[str, Any] = {
        "outputs": {node.node_id: output.result},
        "tokens_used": output.tokens,
        "cost": output.cost,
        **output.updates,
    }
    key = _result_key(node)
    if key is not None:
        update[key] = output.result
    return update


def _failed_update(node: Node, error: NodeError) -> dict[str, Any]:
    record = {"node_id": node.node_id, "code": error.code, "message": error.message}
    update: dict[str, Any] = {"outputs": {node.node_id: None}, "errors": [record]}
    key = _result_key(node)
    if key is not None:
        update[key] = None
    return update
