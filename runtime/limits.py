"""What one run may take of the server, whatever its spec asks: the state's size, one node's
result, the final state a response carries, and the nodes running at once.

Sizes are measured cheaply: the JSON encoding (UTF-8 bytes) of each node's update, once, and a
running total of them. The total counts every write, so it is an upper bound of the state's
size (a key written twice counts twice); it never needs the whole state encoded again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from runtime.errors import InvalidResult, ResultTooLarge, StateTooLarge

MIB = 1024 * 1024

SETTINGS = {
    "max_state_bytes": "AGENTFLOW_MAX_STATE_BYTES",
    "max_result_bytes": "AGENTFLOW_MAX_RESULT_BYTES",
    "max_final_state_bytes": "AGENTFLOW_MAX_FINAL_STATE_BYTES",
    "max_parallel_nodes": "AGENTFLOW_MAX_PARALLEL_NODES",
    "max_recorded_input_chars": "AGENTFLOW_MAX_RECORDED_INPUT_CHARS",
}
"""The operator's setting behind each field (named in the errors a cap raises)."""


@dataclass(frozen=True)
class RunLimits:
    """Caps on one run, set by the operator; a spec cannot raise them."""

    max_state_bytes: int = 32 * MIB
    """Bytes written to the run's state: the initial state plus every node's update, JSON-encoded
    and summed. The update that crosses it fails its node with `state_too_large`."""
    max_result_bytes: int = 8 * MIB
    """Bytes of one node's update, JSON-encoded (its result, written to its key and to `outputs`).
    More fails the node with `result_too_large`; above the http node's 5 MiB body cap."""
    max_final_state_bytes: int = 16 * MIB
    """Bytes of the final state a run returns (the execute response, the stored execution).
    A larger one loses its largest values (set to null) until it fits, and the run fails with
    `final_state_too_large`: a response carries this much state at most."""
    max_parallel_nodes: int = 16
    """Nodes of one run running at once (its parallel branches' nodes, retries included).
    Branches beyond it wait for a slot, first come first served; they do not fail."""
    max_recorded_input_chars: int = 1_000_000
    """Characters of node inputs (rendered prompts, queries, requests) one run's trace keeps,
    all its attempts together; each attempt keeps at most 16,384 of them. Attempts after the
    run reached it record that their input was left out, and the run goes on."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{SETTINGS[item.name]} must be a positive integer: {value!r}")


DEFAULT_LIMITS = RunLimits()


def json_size(value: Any) -> int:
    """UTF-8 bytes of `value` as compact JSON; objects JSON does not know count as their string.

    Raises:
        ValueError: a circular reference. RecursionError: nesting too deep for the encoder.
        TypeError: a mapping key JSON cannot hold.
    """
    text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def update_size(node_id: str, update: Mapping[str, Any], limits: RunLimits) -> int:
    """The update's size, checked against `max_result_bytes`.

    Raises:
        ResultTooLarge: the update is larger than the limit.
        InvalidResult: the update is not JSON (circular, or nested too deeply).
    """
    try:
        size = json_size(update)
    except (ValueError, TypeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidResult(
            f"Node '{node_id}' produced a result that cannot be stored as JSON ({reason}).",
            node_id=node_id,
        ) from None
    if size > limits.max_result_bytes:
        raise ResultTooLarge(
            f"Node '{node_id}' produced {size:,} bytes, over the {limits.max_result_bytes:,}-byte "
            f"limit on one node's result ({SETTINGS['max_result_bytes']}); ask it for less (a "
            "shorter answer, fewer rows, a page) or keep fewer results in one object.",
            node_id=node_id,
        )
    return size


def check_state(total: int, limits: RunLimits, node_id: str | None) -> None:
    """Raise StateTooLarge when `total` bytes written exceed `max_state_bytes`."""
    if total > limits.max_state_bytes:
        where = f" at node '{node_id}'" if node_id else " in its initial state"
        raise StateTooLarge(
            f"The run wrote {total:,} bytes to its state{where}, over its "
            f"{limits.max_state_bytes:,}-byte limit ({SETTINGS['max_state_bytes']}); keep fewer "
            "or smaller results (shorter answers, a template aggregator instead of merge).",
            node_id=node_id,
        )
