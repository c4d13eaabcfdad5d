"""What a node attempt was given (the rendered prompt, the query and its parameters, the
request), kept for its trace: redacted like its output and bounded in size."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

MAX_INPUT_CHARS = 16_384
"""Characters of text an attempt's recorded input keeps, all its strings together."""


def truncated_marker(left_out: int) -> str:
    return f"… [truncated: {left_out} more characters]"


def chat_input(messages: Sequence[Any]) -> dict[str, Any]:
    """An LLM call's input: its messages (system first), each role and rendered content."""
    return {"messages": [{"role": m.role, "content": m.content} for m in messages]}


def recorded_input(value: Any, redact: Callable[[Any], Any], limit: int = MAX_INPUT_CHARS) -> Any:
    """`value` redacted, then with its strings cut once `limit` characters have been kept."""
    return kept_input(value, redact, limit)[0]


def kept_input(value: Any, redact: Callable[[Any], Any], limit: int) -> tuple[Any, int]:
    """`recorded_input`, and how many characters of text it kept."""
    budget = [limit]
    kept = _bounded(redact(value), budget)
    return kept, min(limit, limit - budget[0])


def left_out(cap: int) -> dict[str, str]:
    """What an attempt records once its run's recorded inputs reached `cap` characters."""
    return {
        "omitted": f"This run's recorded node inputs reached {cap:,} characters "
        "(AGENTFLOW_MAX_RECORDED_INPUT_CHARS): later attempts' inputs are not kept."
    }


def _bounded(value: Any, budget: list[int]) -> Any:
    if isinstance(value, str):
        keep = max(budget[0], 0)
        budget[0] -= len(value)
        return value if len(value) <= keep else value[:keep] + truncated_marker(len(value) - keep)
    if isinstance(value, Mapping):
        return {str(key): _bounded(item, budget) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(item, budget) for item in value]
    return value
