"""Replay: run an execution again, its provider calls answered from its record.

The replay is a new execution (`replay_of` names the original) of the original's spec, or of
another version of its workflow; each provider call whose request the original made too is
answered from the original's recordings (executions.recorded_calls), for 0 tokens.

With `from_node`, that node and every later one call their providers afresh, and what came
before is kept: a background replay of a background run starts from the original's LangGraph
checkpoint taken just before the node first ran (copied to the replay's thread; the kept
nodes' trace rows are copied too, marked `kept`). Any other replay (a sync run has no
checkpoints; or a new initial state) runs from the start, the nodes that succeeded before
`from_node` in the original answered from their own recorded calls whatever they ask.
"""

from typing import Any

from django.conf import settings
from django.db import transaction

from executions.checkpoints import checkpoint_fork
from executions.models import Execution, NodeRun, Status
from executions.recorded_calls import nodes_before
from executions.services import execution_create
from executions.tasks import enqueue_run
from runtime.compiler import compile_workflow
from runtime.validation import ValidationResult
from workflows.models import Workflow
from workflows.services import WorkflowInvalid, workflow_validate

REPLAYABLE = (Status.SUCCEEDED, Status.FAILED)


class ReplayRefused(Exception):
    """The replay cannot be made; `field` names the request's field at fault ("" for none)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message, self.field = message, field


def replay_spec(*, execution: Execution, version: int | None) -> dict[str, Any]:
    """The spec a replay runs: the original's as it ran, or version `version` of its workflow.

    Raises:
        ReplayRefused: (field `version`) no such version, or no stored workflow to have one.
    """
    if version is None:
        return dict(execution.spec)
    workflow = execution.workflow
    if workflow is None or workflow.deleted_at is not None:
        raise ReplayRefused(
            f"Execution {execution.id} ran no stored workflow (or it was deleted): it has no "
            "versions; leave version out to replay the spec it ran.",
            "version",
        )
    saved = workflow.versions.filter(version=version).first()
    if saved is None:
        raise ReplayRefused(
            f"Workflow {workflow.id} has versions 1 to {workflow.version}.", "version"
        )
    return dict(saved.spec)


def execution_replay(
    *,
    execution: Execution,
    created_by: str,
    version: int | None = None,
    from_node: str = "",
    mode: str | None = None,
    initial_state: dict[str, Any] | None = None,
) -> tuple[Execution, ValidationResult]:
    """Create the replay of a finished run, queued for the workers when its mode is async, else
    created held by this process, which runs it (`execution_run(claimed=True)`).

    Raises:
        ReplayRefused: the run has not finished (no field), or `version`, `from_node` or
            `mode` is wrong.
        WorkflowInvalid: the spec no longer validates (a source or grant gone).
    """
    if execution.status not in REPLAYABLE:
        raise ReplayRefused(
            f"Execution {execution.id} is {execution.status}: only a succeeded or failed run "
            "can be replayed."
        )
    spec = replay_spec(execution=execution, version=version)
    validated = workflow_validate(spec=spec, tenant=execution.tenant)
    if not validated.valid:
        raise WorkflowInvalid(validated)
    assert validated.spec is not None
    if from_node and from_node not in {node.id for node in validated.spec.nodes}:
        raise ReplayRefused(f"The workflow has no node '{from_node}'.", "from_node")
    mode = mode or execution.mode
    background = mode == "async"
    asking = [node.id for node in validated.spec.nodes if node.type == "approval"]
    if asking and not background:
        raise ReplayRefused(
            f"Node '{asking[0]}' asks a person for approval, which a synchronous request "
            'cannot wait for: replay it with "mode": "async".',
            "mode",
        )
    with transaction.atomic():
        workflow = execution.workflow
        if workflow is not None:  # as the execute API locks it: a delete waits, or comes first
            workflow = Workflow.objects.select_for_update().alive().filter(pk=workflow.pk).first()
        replay = execution_create(
            tenant=execution.tenant,
            validated=validated,
            initial_state=execution.initial_state if initial_state is None else initial_state,
            mode=mode,
            timeout_seconds=None if background else float(settings.AGENTFLOW_SYNC_TIMEOUT),
            created_by=created_by[:64],
            workflow=workflow,
            workflow_version=(version or execution.workflow_version) if workflow else None,
            claim=not background,
            replay_of=execution,
            replay_from_node=from_node,
        )
        if background and from_node and initial_state is None and execution.mode == "async":
            _fork(execution, replay, from_node)
        if background:
            enqueue_run(replay.id)
    return replay, validated


def _fork(original: Execution, replay: Execution, from_node: str) -> bool:
    """Start the replay from the original's checkpoint before `from_node` (a background run
    keeps one per step), the trace rows of the nodes before it copied as kept; False when
    there is none (pruned, or the node never ran), and the replay runs from the start."""
    validated = workflow_validate(spec=original.spec, tenant=original.tenant)
    if not validated.valid:
        return False
    graph = compile_workflow(validated, state_keys=original.initial_state.keys()).graph
    if not checkpoint_fork(graph, source=original.pk, target=replay.pk, node_id=from_node):
        return False
    kept = NodeRun.objects.filter(
        execution=original,
        status=Status.SUCCEEDED,
        node_id__in=nodes_before(original.pk, from_node),
    )
    NodeRun.objects.bulk_create(_kept(row, replay) for row in kept)
    return True


def _kept(row: NodeRun, replay: Execution) -> NodeRun:
    details = row.details | {
        "replayed": True,
        "kept": True,
        "recorded_tokens": row.tokens,
        "recorded_cost": float(row.cost),
    }
    return NodeRun(
        execution=replay,
        node_id=row.node_id,
        node_type=row.node_type,
        attempt=row.attempt,
        status=row.status,
        started_at=row.started_at,
        duration=row.duration,
        output=row.output,
        details=details,
    )
