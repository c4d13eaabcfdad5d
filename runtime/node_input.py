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
    budget = [limit]
    return _bounded(redact(value), budget)


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
