"""Reading a run's trace: which loop pass each node attempt belongs to."""

from collections.abc import Iterable
from typing import Protocol


class _Attempt(Protocol):
    node_id: str
    attempt: int


def loop_passes(rows: Iterable[_Attempt]) -> list[int]:
    """The loop pass (1, 2, …) of each attempt, rows in the order they started: a node's
    attempt numbered 1 starts its next pass; its retries stay in the pass they retry."""
    passes: dict[str, int] = {}
    numbers = []
    for row in rows:
        if row.attempt == 1 or row.node_id not in passes:
            passes[row.node_id] = passes.get(row.node_id, 0) + 1
        numbers.append(passes[row.node_id])
    return numbers
