"""Collects the validator's findings and words them: who (node, edge…), where, what to do."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from runtime.errors import ErrorType, SpecError
from runtime.jsonpos import pointer

Parts = Sequence[str | int]
_LIST_LIMIT = 10
_LABELS = {"nodes": "Node", "queues": "Queue", "sources": "Source", "edges": "Edge"}
_PYDANTIC_WORDS = (
    (re.compile(r"a valid dictionary or instance of \w+|a valid dictionary"), "a JSON object"),
    (re.compile(r"a valid list"), "a JSON array"),
    (re.compile(r"a valid string"), "a string"),
)


@dataclass
class Report:
    obj: dict[str, Any] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[SpecError] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    hints_left: int = 20
    """"Did you mean" costs O(candidates): only the first few mistakes get one (hostile specs)."""

    def hint(self, name: str, candidates: Sequence[str]) -> str:
        if self.hints_left <= 0:
            return ""
        self.hints_left -= 1
        return did_you_mean(name, candidates)

    def add(
        self,
        type_: str,
        message: str,
        parts: Parts = (),
        *,
        node_id: str | None = None,
        warning: bool = False,
    ) -> None:
        path = pointer(parts)
        if (type_, path) in self._seen:
            return
        self._seen.add((type_, path))
        owner = node_id if node_id is not None else owner_node(parts, self.obj)
        (self.warnings if warning else self.errors).append(
            SpecError(str(type_), message, path, owner)
        )

    def add_pydantic(self, exc: ValidationError, base: Parts, data: Any, type_: str) -> None:
        """Report each of pydantic's errors, located in `data` (which sits at `base`)."""
        for err in exc.errors(include_url=False, include_input=False):
            parts = [*base, *located(err["loc"], data)]
            parts, message = _worded(err, parts, self)
            self.add(type_, message, parts)

    def keep_only_node(self, node_id: str, obj: dict[str, Any]) -> None:
        """Keep only what concerns `node_id`: its metadata, its edges, whole-document problems."""
        if node_id not in {text(n, "id") for _, n in items(obj, "nodes")}:
            self.add(
                ErrorType.MISSING_NODE, f"There is no node '{node_id}' in this spec.", ("nodes",)
            )
        edges = {
            pointer(("edges", i))
            for i, e in items(obj, "edges")
            if node_id in (e.get("from"), e.get("to"))
        }
        self.errors = [e for e in self.errors if _concerns(e, node_id, edges)]
        self.warnings = [w for w in self.warnings if _concerns(w, node_id, edges)]


def _concerns(problem: SpecError, node_id: str, edges: set[str]) -> bool:
    if problem.node_id == node_id or problem.path in ("", "/nodes"):
        return True
    return "/".join(problem.path.split("/")[:3]) in edges


def items(obj: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """A top-level list's entries that are objects, with their index (others are schema errors)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def owner_node(parts: Parts, obj: dict[str, Any]) -> str | None:
    """The node an error belongs to: the node itself, or an edge's `from` node."""
    if len(parts) < 2 or parts[0] not in ("nodes", "edges") or not isinstance(parts[1], int):
        return None
    entries = obj.get(str(parts[0]))
    if not isinstance(entries, list) or not 0 <= parts[1] < len(entries):
        return None
    entry = entries[parts[1]]
    return text(entry, "id" if parts[0] == "nodes" else "from") if isinstance(entry, dict) else None


def subject(parts: Parts, obj: dict[str, Any]) -> tuple[str, list[str | int]]:
    """Name what `parts` points into ("Node 'writer'", "edges[2]", "The spec") and the rest."""
    if len(parts) >= 2 and isinstance(parts[1], int) and parts[0] in _LABELS:
        label = _entry_label(str(parts[0]), parts[1], obj)
        return label, list(parts[2:])
    return "The spec", list(parts)


def _entry_label(key: str, index: int, obj: dict[str, Any]) -> str:
    entries = obj.get(key)
    entry = entries[index] if isinstance(entries, list) and 0 <= index < len(entries) else None
    ident = text(entry, "id") if isinstance(entry, dict) else None
    if key == "edges":
        return edge_label(index, entry)
    return f"{_LABELS[key]} {index}" if ident is None else f"{_LABELS[key]} '{ident}'"


def edge_label(index: int, entry: Any) -> str:
    """'Edge 3 (router → writer)': the index is the one in the JSON Pointer (/edges/3)."""
    return f"Edge {index}{_edge_ends(entry)}"


def _edge_ends(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    frm, to = text(entry, "from"), text(entry, "to")
    return f" ({frm} → {to})" if frm and to else ""


def dotted(parts: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in parts)


def known(names: Iterable[str], limit: int = _LIST_LIMIT) -> str:
    """'a, b, c' — or 'a, b, … and 12 more' past `limit`."""
    listed = list(names)
    shown = ", ".join(listed[:limit])
    return shown if len(listed) <= limit else f"{shown} and {len(listed) - limit} more"


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1) if len(candidates) <= 200 else []
    return f" Did you mean '{close[0]}'?" if close else ""


def located(loc: tuple[str | int, ...], data: Any) -> list[str | int]:
    """Turn pydantic's `loc` into pointer parts, dropping union tags that are not keys in `data`."""
    parts: list[str | int] = []
    current = data
    for i, item in enumerate(loc):
        following = loc[i + 1] if i + 1 < len(loc) else None
        if _tag_not_key(current, item, following):
            continue  # a union's tag that is also a key here (`rules` of a rules router)
        if isinstance(current, dict) and item in current:  # noqa: SIM114 - mypy narrows each
            current = current[item]
        elif isinstance(current, list) and isinstance(item, int) and 0 <= item < len(current):
            current = current[item]
        elif not (isinstance(current, dict) and i == len(loc) - 1):
            continue
        parts.append(item)
    return parts


def _tag_not_key(current: Any, item: str | int, following: str | int | None) -> bool:
    """Whether `item` names the union member chosen by a value of `current` (its strategy),
    not the key of the same name: what follows it in `loc` is not inside that key's value."""
    if not isinstance(current, dict) or item not in current or following is None:
        return False
    if item not in [v for v in current.values() if isinstance(v, str)]:
        return False
    inside = current[item]
    if isinstance(inside, dict):
        return following not in inside
    if isinstance(inside, list):
        return not (isinstance(following, int) and 0 <= following < len(inside))
    return True


def _worded(err: Any, parts: list[str | int], report: Report) -> tuple[list[str | int], str]:
    kind = err["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(err["ctx"]["discriminator"]).strip("'\"")
        parts = [*parts, tag]
    who, rest = subject(parts, report.obj)
    field_name = dotted(rest)
    if kind == "extra_forbidden":
        return parts, _extra(who, field_name, report)
    message = _MESSAGES.get(kind, _generic)(err, who, field_name)
    return parts, message


def _generic(err: Any, who: str, field_name: str) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    for pattern, words in _PYDANTIC_WORDS:
        msg = pattern.sub(words, msg)
    where = f"{who}, field '{field_name}'" if field_name else who
    return f"{where}: {msg.rstrip('.')}."


def _missing(err: Any, who: str, field_name: str) -> str:
    return f"{who} is missing the required field '{field_name}'."


def _extra(who: str, field_name: str, report: Report) -> str:
    last = field_name.rsplit(".", 1)[-1]
    if who.startswith("Node ") and "." not in field_name and last in _metadata_fields():
        return (
            f"{who} has the field '{field_name}' beside its metadata: it belongs inside it, "
            f'as "metadata": {{"{last}": …}}.'
        )
    hint = report.hint(last, field_vocabulary())
    if hint == f" Did you mean '{last}'?":  # the right name, in the wrong place
        hint = f" '{last}' is a field elsewhere in a spec, not here."
    return f"{who} has the field '{field_name}', which is not allowed here.{hint}"


@lru_cache(maxsize=1)
def _metadata_fields() -> frozenset[str]:
    """Field names of the built-in node types' metadata models (timeout_seconds, retry, …)."""
    from runtime.spec import workflow_spec_json_schema

    defs = workflow_spec_json_schema()["$defs"]
    return frozenset(
        name
        for key, d in defs.items()
        if key.endswith("Metadata")
        for name in d.get("properties", {})
    )


def _tag_invalid(err: Any, who: str, field_name: str) -> str:
    expected = err["ctx"].get("expected_tags", "")
    return f"{who}, field '{field_name}': {err['ctx'].get('tag')!r} is not one of {expected}."


_MESSAGES = {
    "missing": _missing,
    "union_tag_invalid": _tag_invalid,
    "union_tag_not_found": _missing,
}


@lru_cache(maxsize=1)
def field_vocabulary() -> list[str]:
    """Every field name the spec's models know, for "did you mean" hints."""
    from runtime.spec import workflow_spec_json_schema  # the schema imports every model

    schema = workflow_spec_json_schema()
    names = {name for d in schema["$defs"].values() for name in d.get("properties", {})}
    return sorted(names | set(schema.get("properties", {})))
