"""One node's run inside a workflow: step count, retries, timeout, events, `on_error`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from runtime.context import RunContext
from runtime.errors import NodeError, NodeTimeout
from runtime.events import NodeFinished, NodeStarted
from runtime.nodes.base import Node, NodeOutput, State
from runtime.policies import NO_RETRY, RetryPolicy, retrying


class InternalNodeError(NodeError):
    """A node failed in a way it does not name (a bug or an unexpected library error)."""

    code = "internal_error"


def _policy(node: Node) -> RetryPolicy:
    retry = node.meta.retry
    return RetryPolicy(**retry.model_dump()) if retry is not None else NO_RETRY


async def execute_node(node: Node, node_type: str, state: State, ctx: RunContext) -> dict[str, Any]:
    """Run `node` as SPEC §2 says and return its update to the state.

    Raises:
        NodeError: the node failed (after its retries) and its `on_error` is `fail`.
    """
    ctx.count_step(node.node_id)
    policy = _policy(node)
    try:
        if policy.max_attempts == 1:  # the common case needs no retry machinery
            output = await _attempt(node, node_type, state, ctx, 1)
        else:
            async for attempt in retrying(policy, ctx.sleep):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    output = await _attempt(node, node_type, state, ctx, number)
    except NodeError as error:
        if node.meta.on_error == "continue":
            return _failed_update(node, error)
        raise
    return _update(node, output)


async def _attempt(
    node: Node, node_type: str, state: State, ctx: RunContext, attempt: int
) -> NodeOutput:
    started_at, start = ctx.now(), ctx.clock()
    gate_wait = ctx.rate_waits.pop(node.node_id, None)
    await ctx.observer.node_started(NodeStarted(node.node_id, node_type, attempt, started_at))
    limit = node.meta.timeout_seconds
    try:
        async with asyncio.timeout(limit) as deadline:
            output = await node.run(state, ctx)
    except Exception as exc:  # every failure becomes a NodeError, recorded, then raised
        error = _as_node_error(node, exc, expired=deadline.expired(), limit=limit)
        await ctx.observer.node_finished(
            NodeFinished(
                node.node_id,
                node_type,
                attempt,
                started_at,
                ctx.clock() - start,
                "failed",
                error={"code": error.code, "message": error.message},
                details=_rate_wait({}, gate_wait),
            )
        )
        raise error from exc
    await ctx.observer.node_finished(
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
            details=_rate_wait(output.details, gate_wait),
        )
    )
    return output


def _rate_wait(details: Mapping[str, Any], gate_wait: float | None) -> dict[str, Any]:
    """The node's trace details; `rate_wait_seconds` adds its queue gate's wait to its own."""
    waits = [w for w in (gate_wait, details.get("rate_wait_seconds")) if w is not None]
    merged = dict(details)
    if waits:
        merged["rate_wait_seconds"] = round(sum(waits), 6)
    return merged


def _as_node_error(node: Node, exc: Exception, *, expired: bool, limit: float | None) -> NodeError:
    if expired:
        return NodeTimeout(
            f"Node '{node.node_id}' took longer than its timeout_seconds ({limit:g} s).",
            node_id=node.node_id,
        )
    if isinstance(exc, NodeError):
        exc.node_id = exc.node_id or node.node_id
        return exc
    message = f"Node '{node.node_id}' failed unexpectedly: {type(exc).__name__}: {exc}"
    return InternalNodeError(message, node_id=node.node_id)


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
