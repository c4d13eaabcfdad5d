"""What changed between two saved specs: a structural diff, and an RFC 6902 JSON Patch."""

import json
from typing import Any, TypedDict

import jsonpatch

COLLECTIONS = ("nodes", "queues", "sources")
EDGE_KEY = ("from", "to", "condition")


class ChangedEntry(TypedDict):
    id: str
    fields: list[str]


class CollectionDiff(TypedDict):
    added: list[str]
    removed: list[str]
    changed: list[ChangedEntry]
    reordered: bool


class EdgeDiff(TypedDict):
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[dict[str, Any]]
    reordered: bool


class SpecDiff(TypedDict):
    nodes: CollectionDiff
    edges: EdgeDiff
    queues: CollectionDiff
    sources: CollectionDiff
    other: list[str]
    patch: list[dict[str, Any]]


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: 1, 1.0 and true differ."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def changed_fields(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves that differ, going into objects (a list is one leaf)."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if _same(a, b) else [prefix]
    found: list[str] = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in a or key not in b:
            found.append(path)
        else:
            found += changed_fields(a[key], b[key], path)
    return found


def _by_id(entries: Any) -> dict[str, Any]:
    rows = entries if isinstance(entries, list) else []
    return {str(e["id"]): e for e in rows if isinstance(e, dict) and "id" in e}


def _collection(a: Any, b: Any) -> CollectionDiff:
    old, new = _by_id(a), _by_id(b)
    changed: list[ChangedEntry] = []
    for ident in (i for i in new if i in old):
        fields = changed_fields(_without_id(old[ident]), _without_id(new[ident]))
        if fields:
            changed.append({"id": ident, "fields": fields})
    common = [i for i in old if i in new]
    return {
        "added": [i for i in new if i not in old],
        "removed": [i for i in old if i not in new],
        "changed": changed,
        "reordered": common != [i for i in new if i in old],
    }


def _without_id(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "id"}


def _edge_ref(edge: dict[str, Any]) -> dict[str, Any]:
    return {"from": edge.get("from"), "to": edge.get("to"), "condition": edge.get("condition")}


def _edge_groups(edges: Any) -> dict[str, list[dict[str, Any]]]:
    """Edges by (from, to, condition): two edges may share one, so each key holds a list."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for edge in edges if isinstance(edges, list) else []:
        if isinstance(edge, dict):
            groups.setdefault(json.dumps(_edge_ref(edge)), []).append(edge)
    return groups


def _edges(a: Any, b: Any) -> EdgeDiff:
    old, new = _edge_groups(a), _edge_groups(b)
    diff: EdgeDiff = {"added": [], "removed": [], "changed": [], "reordered": False}
    for key in {**old, **new}:
        before, after = old.get(key, []), new.get(key, [])
        for x, y in zip(before, after, strict=False):
            fields = changed_fields(_without_ref(x), _without_ref(y))
            if fields:
                diff["changed"].append({**_edge_ref(y), "fields": fields})
        diff["removed"] += [_edge_ref(e) for e in before[len(after) :]]
        diff["added"] += [_edge_ref(e) for e in after[len(before) :]]
    common = [k for k in old if k in new]
    diff["reordered"] = common != [k for k in new if k in old]
    return diff


def _without_ref(edge: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in edge.items() if k not in EDGE_KEY}


def json_patch(a: Any, b: Any) -> list[dict[str, Any]]:
    """RFC 6902 operations turning `a` into `b`; checked by applying them, with the whole
    document replaced as the (never yet needed) fallback."""
    ops: list[dict[str, Any]] = jsonpatch.make_patch(a, b).patch
    try:
        applies = _same(jsonpatch.apply_patch(a, ops), b)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
        applies = False
    return ops if applies else [{"op": "replace", "path": "", "value": b}]


def spec_diff(a: dict[str, Any], b: dict[str, Any]) -> SpecDiff:
    """How spec `b` differs from spec `a`: nodes, queues and sources by id, edges by
    (from, to, condition), every other field by dotted path, and a JSON Patch from a to b."""
    rest = set(a) | set(b)
    rest -= {*COLLECTIONS, "edges"}
    other = changed_fields({k: a.get(k) for k in rest if k in a}, {k: b[k] for k in rest if k in b})
    return {
        "nodes": _collection(a.get("nodes"), b.get("nodes")),
        "edges": _edges(a.get("edges"), b.get("edges")),
        "queues": _collection(a.get("queues"), b.get("queues")),
        "sources": _collection(a.get("sources"), b.get("sources")),
        "other": other,
        "patch": json_patch(a, b),
    }
