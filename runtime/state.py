"""The run's state (SPEC §3): well-known keys with their reducers, and the schema LangGraph needs.

Parallel branches write in the same step, so every key has a reducer: `tokens_used` and `cost`
are summed, `outputs` and `metadata` merged, `errors` appended, anything else last-write-wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, TypedDict

RESULT_KEYS = (
    "user_input",
    "intent",
    "text_result",
    "image_result",
    "db_result",
    "http_result",
    "final_output",
)
LOOPS_KEY = "_loops"
"""Internal: traversals of each loop-bounded edge. Never part of the final state."""
INTERNAL_KEYS = frozenset({LOOPS_KEY})


def last_value(_old: Any, new: Any) -> Any:
    return new


def add_ints(old: int | None, new: int | None) -> int:
    return int(old or 0) + int(new or 0)


def add_floats(old: float | None, new: float | None) -> float:
    return float(old or 0) + float(new or 0)


def merge_dicts(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**(old or {}), **(new or {})}


def append_items(old: list[Any] | None, new: list[Any] | None) -> list[Any]:
    return [*(old or []), *(new or [])]


_REDUCED: dict[str, Any] = {
    "tokens_used": Annotated[int, add_ints],
    "cost": Annotated[float, add_floats],
    "metadata": Annotated[dict, merge_dicts],
    "outputs": Annotated[dict, merge_dicts],
    "errors": Annotated[list, append_items],
    LOOPS_KEY: Annotated[dict, merge_dicts],
}


def state_schema(extra_keys: Iterable[str] = ()) -> type:
    """A TypedDict of the well-known keys plus `extra_keys` (output keys, initial-state keys)."""
    fields: dict[str, Any] = {key: Annotated[Any, last_value] for key in RESULT_KEYS}
    for key in extra_keys:
        if key not in _REDUCED:
            fields[key] = Annotated[Any, last_value]
    fields.update(_REDUCED)
    return TypedDict("WorkflowState", fields, total=False)  # type: ignore[operator,no-any-return]


def initial_state(values: Mapping[str, Any]) -> dict[str, Any]:
    """The state a run starts from: the caller's values plus the reduced keys' zero values."""
    state: dict[str, Any] = {"tokens_used": 0, "cost": 0.0, "outputs": {}, "errors": []}
    state.update(values)
    return state


def final_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy without internal keys: NaN and infinities become null, objects JSON
    does not know their string form."""
    public = {k: v for k, v in state.items() if k not in INTERNAL_KEYS}
    text = json.dumps(public, default=str, allow_nan=True)
    loaded: dict[str, Any] = json.loads(text, parse_constant=lambda _constant: None)
    return loaded
