"""Reading a run's trace: which loop pass each node attempt belongs to."""

from collections.abc import Iterable
from typing import Protocol


class _Attempt(Protocol):
    node_id: str
    attempt: int
    status: str


def loop_passes(rows: Iterable[_Attempt]) -> list[int]:
    """The loop pass (1, 2, …) of each attempt, rows in the order they started: a node's
    attempt numbered 1 starts its next pass; its retries stay in the pass they retry, and so
    does the attempt that goes on after it waited for a person (an approval)."""
    passes: dict[str, int] = {}
    waited: set[str] = set()
    numbers = []
    for row in rows:
        if row.node_id not in passes or (row.attempt == 1 and row.node_id not in waited):
            passes[row.node_id] = passes.get(row.node_id, 0) + 1
        waited.discard(row.node_id)
        if row.status == "waiting":
            waited.add(row.node_id)
        numbers.append(passes[row.node_id])
    return numbers
