"""Validation results kept per process, keyed by everything a result depends on.

The key is the sha256 of the spec as given (JSON text, or parsed JSON dumped in its own key
order, since errors come in that order) and a digest of the tenant (id, creation time, grants,
trusted hosts) and of every operator setting validation reads, so a changed grant, trusted host
or setting is a different key: nothing has to be invalidated, nothing stale can be served.

Stored sources live in another table that other processes change: an entry records what each
stored source it resolved was (`ref -> (kind, config)` or absent), and a hit is served only when
one query finds them all the same now. A spec that names no stored source costs no query.

A spec with `workflow` nodes is validated every time, never kept: its result depends on the
stored workflows it calls (and theirs), which change in other processes too.

Per process only: a result holds the parsed spec and each node's metadata model, which would
have to be pickled and rebuilt on every read from a shared cache; the repeated validations
(a worker starting runs of one spec, a client executing one spec) happen in long-lived processes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from runtime.plugins.registry import generation as plugins_generation
from runtime.sandbox.limits import current_limits
from runtime.spec import SourceSpec
from runtime.validation import ValidationResult
from sources.selectors import source_resolver, sources_of
from tenants.models import Tenant

MAX_ENTRIES = 512
MAX_BYTES = 64 * 1024 * 1024
"""Memory all entries may hold, estimated as `MEMORY_PER_SPEC_BYTE` x their specs' JSON bytes."""
MAX_ENTRY_BYTES = MAX_BYTES // 8
MEMORY_PER_SPEC_BYTE = 20
"""A result holds ~17 bytes per byte of compact spec JSON (bench/bench_caching.py: 2 MiB for a
1,000-node spec of 124 KiB), so 64 MiB is ~3 MiB of specs: a 1,000-node spec fits 25 times."""
_SETTINGS = (
    "AGENTFLOW_MAX_SPEC_BYTES",
    "AGENTFLOW_MAX_SPEC_NODES",
    "AGENTFLOW_MAX_STEPS",
    "AGENTFLOW_ALLOWED_ENV",
    "AGENTFLOW_PROVIDER_BASE_URLS",
    "AGENTFLOW_TRUSTED_HOSTS",
    "AGENTFLOW_TRUSTED_PROVIDER_HOSTS",
    "AGENTFLOW_AGGREGATIONS",
    "AGENTFLOW_MAX_WORKFLOW_DEPTH",
)
"""What validation reads from the operator's settings (and some it may come to read)."""

type Stored = tuple[str, str] | None
"""A stored source as validation saw it: (kind, config as JSON), or None for no such source."""


@dataclass
class CacheStats:
    """This process's validation-cache lookups since start (or `reset`)."""

    hits: int = 0
    misses: int = 0
    stale: int = 0
    """Entries found whose stored sources had changed (counted in misses too)."""
    uncached: int = 0
    """Validations the cache did not look at: turned off, no tenant, or a spec too large."""

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0

    def reset(self) -> None:
        self.hits = self.misses = self.stale = self.uncached = 0


@dataclass(frozen=True)
class _Entry:
    result: ValidationResult
    stored: dict[str, Stored]
    size: int
    expires: float


STATS = CacheStats()
_entries: OrderedDict[str, _Entry] = OrderedDict()
_bytes = [0]
_lock = threading.Lock()


def cached_validation(
    *,
    spec: Any,
    tenant: Tenant | None,
    only_node: str | None,
    validate: Callable[[Callable[[str], SourceSpec | None] | None], ValidationResult],
    clock: Callable[[], float] = time.monotonic,
) -> ValidationResult:
    """`validate(resolve_source)`'s result, from the cache when nothing it depends on changed.

    `validate` is called with the resolver of the tenant's stored sources to use (one that
    records what it finds), or None when there is no tenant.
    """
    ttl = settings.AGENTFLOW_VALIDATION_CACHE_SECONDS
    spec_key = _spec_key(spec) if ttl > 0 and tenant is not None else None
    if tenant is None or spec_key is None:
        STATS.uncached += 1
        return validate(source_resolver(tenant) if tenant is not None else None)
    key = _context_key(tenant, only_node) + spec_key[0]
    found = _get(key, clock())
    if found is not None and _stored_now(tenant, found.stored) == found.stored:
        STATS.hits += 1
        return found.result
    STATS.misses += 1
    STATS.stale += found is not None
    seen: dict[str, Stored] = {}
    result = validate(_recorder(tenant, seen))
    if not result.calls_workflows:  # it depends on other stored workflows: never kept
        _put(key, _Entry(result, seen, spec_key[1], clock() + ttl))
    return result


def clear() -> None:
    """Forget every entry (the counters stay)."""
    with _lock:
        _entries.clear()
        _bytes[0] = 0


def _spec_key(spec: Any) -> tuple[str, int] | None:
    """sha256 of the spec as given and the memory its result may hold; None when it is too
    large or not JSON."""
    if isinstance(spec, str):
        raw, tag = spec.encode(), b"t"
    elif isinstance(spec, bytes):
        raw, tag = spec, b"t"
    else:
        try:
            raw, tag = json.dumps(spec, separators=(",", ":")).encode(), b"j"
        except (TypeError, ValueError, RecursionError):
            return None
    size = len(raw) * MEMORY_PER_SPEC_BYTE
    if size > MAX_ENTRY_BYTES:
        return None
    return hashlib.sha256(tag + raw).hexdigest(), size


def _context_key(tenant: Tenant, only_node: str | None) -> str:
    context = {
        "tenant": [tenant.pk, str(tenant.created_at), tenant.allowed_env, tenant.trusted_hosts],
        "settings": [getattr(settings, name, None) for name in _SETTINGS],
        "sandbox": repr(current_limits()),
        "plugins": plugins_generation(),  # the node plugins this process loaded
        "only_node": only_node,
    }
    text = json.dumps(context, default=repr, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _get(key: str, now: float) -> _Entry | None:
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            _drop(key)
            return None
        _entries.move_to_end(key)
        return entry


def _put(key: str, entry: _Entry) -> None:
    with _lock:
        if key in _entries:
            _drop(key)
        _entries[key] = entry
        _bytes[0] += entry.size
        while len(_entries) > MAX_ENTRIES or _bytes[0] > MAX_BYTES:
            _drop(next(iter(_entries)))


def _drop(key: str) -> None:
    _bytes[0] -= _entries.pop(key).size


def _recorder(tenant: Tenant, seen: dict[str, Stored]) -> Callable[[str], SourceSpec | None]:
    """Resolve a node's `source` to the tenant's live stored source, noting what it was."""

    def resolve(ref: str) -> SourceSpec | None:
        stored = _stored_now(tenant, {ref: None})[ref]
        seen[ref] = stored
        if stored is None:
            return None
        kind, config = stored
        return SourceSpec.model_validate({"id": ref, "kind": kind, "config": json.loads(config)})

    return resolve


def _stored_now(tenant: Tenant, refs: Iterable[str]) -> dict[str, Stored]:
    """Each ref's live stored source, by id or by name (the newest id wins, as in
    `sources.selectors.source_by_ref`), in one query; no query for no refs."""
    wanted = list(refs)
    if not wanted:
        return {}
    rows = sources_of(tenant).filter(Q(id__in=wanted) | Q(name__in=wanted)).order_by("-id")
    found = list(rows.values_list("id", "name", "kind", "config"))
    answer: dict[str, Stored] = {}
    for ref in wanted:
        match = next((row for row in found if ref in (row[0], row[1])), None)
        answer[ref] = (match[2], json.dumps(match[3])) if match is not None else None
    return answer
