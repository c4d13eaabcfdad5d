"""A run's provider calls, kept as `ProviderRecording` rows, and what a replay answers from."""

import structlog

from executions.models import Execution, NodeRun, ProviderRecording, Status
from executions.runner import CallerThread
from runtime.replay import Recorded, Replay

logger = structlog.get_logger(__name__)


def recordings_of(execution_id: str) -> list[Recorded]:
    rows = ProviderRecording.objects.filter(execution_id=execution_id).order_by("id")
    return [
        Recorded(node_id=r.node_id, digest=r.digest, kind=r.kind, response=r.response) for r in rows
    ]


def nodes_before(execution_id: str, node_id: str) -> frozenset[str]:
    """Nodes that succeeded in the run before `node_id` first started (all of them when it
    never did)."""
    runs = NodeRun.objects.filter(execution_id=execution_id)
    first = runs.filter(node_id=node_id).order_by("started_at").first()
    done = runs.filter(status=Status.SUCCEEDED).exclude(node_id=node_id)
    if first is not None:
        done = done.filter(started_at__lt=first.started_at)
    return frozenset(done.values_list("node_id", flat=True))


def execution_recordings(execution: Execution, caller: CallerThread) -> Replay:
    """The run's Recordings: each call it makes is kept (written by `caller`, between its
    events); a replay is also answered from the run it replays."""
    execution_id = execution.pk

    async def keep(recorded: Recorded) -> None:
        try:
            await caller.call(lambda: _save(execution_id, recorded))
        except Exception:  # a lost record costs a later replay a call, never this run
            logger.exception("provider_recording_lost", execution_id=execution_id)

    original, from_node = execution.replay_of_id, execution.replay_from_node
    if original is None:
        return Replay(sink=keep)
    pinned = nodes_before(original, from_node) if from_node else frozenset()
    return Replay(recordings_of(original), keep, pinned=pinned, fresh_others=bool(from_node))


def _save(execution_id: str, recorded: Recorded) -> None:
    ProviderRecording.objects.create(
        execution_id=execution_id,
        node_id=recorded["node_id"],
        digest=recorded["digest"],
        kind=recorded["kind"],
        response=recorded["response"],
    )
