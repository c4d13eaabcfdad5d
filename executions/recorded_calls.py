"""A run's provider calls, kept as `ProviderRecording` rows, and what a replay answers from."""

from executions.models import Execution, NodeRun, ProviderRecording, Status
from executions.recording import TraceWriter
from runtime.replay import Recorded, Replay


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


def execution_recordings(execution: Execution, writer: TraceWriter) -> Replay:
    """The run's Recordings: each call it makes is handed to `writer`, which writes it with the
    trace batch its node's end comes in (no statement of its own between two provider calls);
    a replay is also answered from the run it replays."""
    execution_id = execution.pk

    async def keep(recorded: Recorded) -> None:
        writer.keep_call(execution_id, recorded)

    original, from_node = execution.replay_of_id, execution.replay_from_node
    if original is None:
        return Replay(sink=keep)
    pinned = nodes_before(original, from_node) if from_node else frozenset()
    return Replay(recordings_of(original), keep, pinned=pinned, fresh_others=bool(from_node))
