"""The run's state (SPEC §3): well-known keys with their reducers, and the schema LangGraph needs.

Parallel branches write in the same step, so every key has a reducer: `tokens_used` and `cost`
are summed, `outputs` and `metadata` merged, `errors` appended, anything else last-write-wins.

The merged keys live in LangGraph `DeltaChannel`s, whose reducer takes all of a superstep's
writes at once: a fan-out of N branches merges in one pass (a reducer called once per write
would copy the growing dict N times), and a checkpoint stores the step's writes, not the whole
`outputs` again (LangGraph writes a full snapshot every 100 updates of the key, and rebuilds
the value from the snapshot and the writes after it when a run resumes). `DeltaChannel` is
beta in langgraph 1.2: its stored form could change in a later release, which matters only
to a run that is resumed across an upgrade.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langgraph.channels import DeltaChannel

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
_SURROGATES = re.compile("[\ud800-\udfff]")


def last_value(_old: Any, new: Any) -> Any:
    return new


def add_ints(old: int | None, new: int | None) -> int:
    return int(old or 0) + int(new or 0)


def add_floats(old: float | None, new: float | None) -> float:
    return float(old or 0) + float(new or 0)


def merge_dicts(
    old: Mapping[str, Any] | None, writes: Sequence[Mapping[str, Any] | None]
) -> dict[str, Any]:
    """The old value updated by each write in turn (later writes win), copied once per superstep,
    never changed in place: a checkpoint still being saved may hold `old`."""
    merged = dict(old or {})
    for new in writes:
        if new:
            merged.update(new if isinstance(new, dict) else {**new})  # {**x}: mappings only
    return merged


def append_items(old: list[Any] | None, writes: Sequence[list[Any] | None]) -> list[Any]:
    """The old list followed by each write's items, copied once per superstep."""
    items = list(old or [])
    for new in writes:
        if new:
            items.extend(new)
    return items


def _merged(reducer: Callable[[Any, Sequence[Any]], Any]) -> DeltaChannel[Any]:
    return DeltaChannel(reducer)


_REDUCED: dict[str, Any] = {
    "tokens_used": Annotated[int, add_ints],
    "cost": Annotated[float, add_floats],
    "metadata": Annotated[dict, _merged(merge_dicts)],
    "outputs": Annotated[dict, _merged(merge_dicts)],
    "errors": Annotated[list, _merged(append_items)],
    LOOPS_KEY: Annotated[dict, _merged(merge_dicts)],
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
    does not know their string form, lone surrogates (not Unicode) U+FFFD."""
    return bounded_final_state(state, None).values


@dataclass(frozen=True)
class FinalState:
    values: dict[str, Any]
    size: int
    """UTF-8 bytes of the state as it came, JSON-encoded (before anything was left out)."""
    omitted: tuple[str, ...] = ()
    """What was set to null to fit the limit (`final_output`, `outputs.writer`), largest first."""


def bounded_final_state(state: Mapping[str, Any], max_bytes: int | None) -> FinalState:
    """`final_state`, fitted into `max_bytes`: the largest values (top-level keys, and each
    node's entry in `outputs`) become null until the rest fits."""
    public = {k: v for k, v in state.items() if k not in INTERNAL_KEYS}
    try:
        text = json.dumps(public, default=str, allow_nan=True, ensure_ascii=False)
        text, size = _encodable(text)
        values: dict[str, Any] = json.loads(text, parse_constant=lambda _constant: None)
    except RecursionError:  # nested deeper than the encoder can go from here: keep the keys
        return FinalState(dict.fromkeys(public), 0, tuple(public))
    if max_bytes is None or size <= max_bytes:
        return FinalState(values, size)
    return FinalState(values, size, _omit_largest(values, size - max_bytes))


def _encodable(text: str) -> tuple[str, int]:
    """The text with lone surrogates replaced (they cannot be encoded), and its UTF-8 size."""
    try:
        return text, len(text.encode())
    except UnicodeEncodeError:
        text = _SURROGATES.sub("\ufffd", text)
        return text, len(text.encode())


def _omit_largest(values: dict[str, Any], excess: int) -> tuple[str, ...]:
    outputs = values.get("outputs")
    candidates = [(_size(v), k, values) for k, v in values.items() if k != "outputs"]
    if isinstance(outputs, dict):
        candidates += [(_size(v), k, outputs) for k, v in outputs.items()]
    else:
        candidates.append((_size(outputs), "outputs", values))
    omitted: list[str] = []
    for size, key, holder in sorted(candidates, key=lambda c: c[0], reverse=True):
        if excess <= 0 or size <= len("null"):
            break
        holder[key] = None
        excess -= size - len("null")
        omitted.append(key if holder is values else f"outputs.{key}")
    return tuple(omitted)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())
