"""The checks on `workflow` nodes: the stored workflow each one calls is found, validated as the
caller's own spec would be, and pinned into the result, so that a run executes what was checked.

A workflow calling one that calls it back is a `workflow_cycle`; calls nested deeper than the
operator allows are `workflow_depth`. Another tenant's workflow is as unknown as a missing one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from runtime.errors import ErrorType, SpecError
from runtime.node_metadata import Loc, WorkflowMetadata
from runtime.validation_report import items, subject, text

if TYPE_CHECKING:
    from runtime.validation import ValidationResult
    from runtime.validation_checks import Context

MAX_SUBWORKFLOWS = 100
"""Sub-workflows checked in all under one spec (every level), so that a few workflows calling
each other many times over cannot make one validation do unbounded work."""
MAX_TRACE_ID = 64
"""Longest node id in a run's trace (`caller/node`): what a trace row holds."""
CARRIED = (ErrorType.WORKFLOW_CYCLE, ErrorType.WORKFLOW_DEPTH)
"""A sub-workflow's problems reported as themselves in its caller (else `invalid_workflow`)."""


@dataclass(frozen=True)
class StoredWorkflow:
    """A workflow of the tenant, as the resolver found it."""

    id: str
    name: str
    version: int
    """The version asked for (the current one when none was)."""
    latest: int
    spec: Mapping[str, Any] | None
    """The spec of `version`; None when the workflow has no such version."""


WorkflowResolver = Callable[[str, int | None], StoredWorkflow | None]
"""(id or name, version or None) → the tenant's stored workflow, or None."""


@dataclass(frozen=True)
class SubWorkflow:
    """What a `workflow` node runs: the stored workflow, pinned to the version validated."""

    workflow_id: str
    name: str
    version: int
    validated: ValidationResult


def source_kinds(validated: ValidationResult) -> frozenset[str]:
    """The kinds of the sources a spec and every sub-workflow it calls use."""
    kinds = {source.kind for source in validated.sources.values()}
    for sub in validated.workflows.values():
        kinds |= source_kinds(sub.validated)
    return frozenset(kinds)


def check_workflows(ctx: Context) -> None:
    if ctx.opts.workflow_tally is None:  # the top spec: its count starts here
        ctx.opts = replace(ctx.opts, workflow_tally=[0])
    for i, node in items(ctx.obj, "nodes"):
        if text(node, "type") != "workflow":
            continue
        ctx.calls_workflows = True
        ident = text(node, "id")
        meta = ctx.metadata_by_id.get(ident) if ident else None
        if ident is not None and isinstance(meta, WorkflowMetadata):
            _check_call(ctx, i, ident, meta)


def _check_call(ctx: Context, i: int, ident: str, meta: WorkflowMetadata) -> None:
    where: Loc = ("nodes", i, "metadata", "workflow")
    who = subject(("nodes", i), ctx.obj)[0]
    found = _found(ctx, i, who, meta)
    if found is None:
        return
    problem = _placement_problem(ctx, who, found)
    if problem is None:
        child = _validated_child(ctx, ident, found)
        problem = _child_problem(who, found, child, f"{ctx.opts.node_prefix}{ident}/")
    if problem is not None:
        ctx.report.add(problem[0], problem[1], where)
        return
    sub = SubWorkflow(found.id, found.name, found.version, child)
    meta._child = sub
    ctx.workflows[ident] = sub


def _found(ctx: Context, i: int, who: str, meta: WorkflowMetadata) -> StoredWorkflow | None:
    """The stored workflow the node calls, at its version; None (reported) when there is none."""
    opts, ref = ctx.opts, meta.workflow
    where: Loc = ("nodes", i, "metadata", "workflow")
    if opts.resolve_workflow is None:
        msg = (
            f"{who} calls the workflow '{ref}', which can be looked up only among an account's "
            "stored workflows: validate or run this spec through the API."
        )
        ctx.report.add(ErrorType.UNKNOWN_WORKFLOW, msg, where)
        return None
    tally = opts.workflow_tally or [0]
    tally[0] += 1
    if tally[0] > MAX_SUBWORKFLOWS:
        msg = (
            f"{who} calls the workflow '{ref}', past the {MAX_SUBWORKFLOWS} sub-workflow calls "
            "one spec may hold at all its levels together. Call fewer workflows."
        )
        ctx.report.add(ErrorType.WORKFLOW_DEPTH, msg, where)
        return None
    found = opts.resolve_workflow(ref, meta.version)
    if found is None:
        msg = (
            f"{who} calls the workflow '{ref}', which is not a workflow stored for your "
            "account (give its id, wf_…, or its name)."
        )
        ctx.report.add(ErrorType.UNKNOWN_WORKFLOW, msg, where)
    elif found.spec is None:
        msg = (
            f"{who} asks for version {found.version} of the workflow '{found.name}' "
            f"({found.id}), which has versions 1 to {found.latest}."
        )
        ctx.report.add(ErrorType.UNKNOWN_WORKFLOW_VERSION, msg, ("nodes", i, "metadata", "version"))
        return None
    return found


def _path(ctx: Context) -> tuple[tuple[str, str], ...]:
    """The callers above this spec and the spec itself (id "" when it is not stored)."""
    if ctx.opts.workflow_path:
        return ctx.opts.workflow_path
    name = text(ctx.obj, "name") or "this workflow"
    return (("", name),)


def _placement_problem(ctx: Context, who: str, found: StoredWorkflow) -> tuple[str, str] | None:
    path = _path(ctx)
    chain = " → ".join([*(name for _, name in path), found.name])
    if any(ident == found.id for ident, _ in path):
        return ErrorType.WORKFLOW_CYCLE, (
            f"{who} calls the workflow '{found.name}' ({found.id}), which is already running "
            f"higher up: {chain}. Workflows may not call each other in a cycle."
        )
    depth = len(path)
    limit = ctx.opts.max_workflow_depth
    if depth > limit:
        return ErrorType.WORKFLOW_DEPTH, (
            f"{who} calls the workflow '{found.name}' at depth {depth} ({chain}); this server "
            f"allows workflows to call workflows {limit} level(s) deep "
            "(AGENTFLOW_MAX_WORKFLOW_DEPTH). Call it from higher up, or inline its nodes."
        )
    return None


def _validated_child(ctx: Context, ident: str, found: StoredWorkflow) -> ValidationResult:
    from runtime.validation import validate_spec  # the validator calls this module

    opts = replace(
        ctx.opts,
        only_node=None,
        workflow_path=(*_path(ctx), (found.id, found.name)),
        node_prefix=f"{ctx.opts.node_prefix}{ident}/",
    )
    return validate_spec(dict(found.spec or {}), opts)


def _child_problem(
    who: str, found: StoredWorkflow, child: ValidationResult, prefix: str
) -> tuple[str, str] | None:
    named = f"the workflow '{found.name}' ({found.id}, version {found.version})"
    carried = next((e for e in child.errors if e.type in CARRIED), None)
    if carried is not None:
        return carried.type, f"{who} calls {named}, where: {carried.message}"
    if child.errors:
        return ErrorType.INVALID_WORKFLOW, (
            f"{who} calls {named}, which is not valid now: {_first(child.errors)}"
        )
    if child.spec is None:
        return ErrorType.INVALID_WORKFLOW, f"{who} calls {named}, which could not be read."
    waits = [n.id for n in child.spec.nodes if n.type == "approval"]
    if waits:
        return ErrorType.INVALID_WORKFLOW, (
            f"{who} calls {named}, which asks a person for approval (node '{waits[0]}'); a "
            "workflow run as a node cannot wait. Put the approval in the calling workflow."
        )
    too_long = trace_id_problem(prefix, [n.id for n in child.spec.nodes])
    if too_long is not None:
        return ErrorType.INVALID_WORKFLOW, f"{who} calls {named}: {too_long}."
    return None


def _first(errors: list[SpecError]) -> str:
    first = errors[0]
    where = f" (at {first.path})" if first.path else ""
    more = f" And {len(errors) - 1} more problem(s)." if len(errors) > 1 else ""
    return f"{first.message}{where}{more}"


def trace_id_problem(prefix: str, node_ids: list[str]) -> str | None:
    """A node whose trace id (`prefix` + its id) would not fit a trace row."""
    long = next((n for n in node_ids if len(prefix) + len(n) > MAX_TRACE_ID), None)
    if long is None:
        return None
    return (
        f"in the run's trace, its node '{long}' would be '{prefix}{long}', over "
        f"{MAX_TRACE_ID} characters; use shorter node ids"
    )
