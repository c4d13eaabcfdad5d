"""The operator's ceilings on database sources, for the whole process.

`agentflow_site` sets them once at start (`configure(...)` from the `AGENTFLOW_DB_*` settings);
a tenant's source config may ask for less, never more. Pools opened before a `configure()`
keep the sizes they were opened with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

SETTINGS = {
    "max_per_source": "AGENTFLOW_DB_POOL_MAX_PER_SOURCE",
    "max_total": "AGENTFLOW_DB_POOL_MAX_TOTAL",
    "pool_timeout": "AGENTFLOW_DB_POOL_TIMEOUT",
    "max_rows": "AGENTFLOW_DB_MAX_ROWS",
    "max_bytes": "AGENTFLOW_DB_MAX_BYTES",
    "idle_timeout": "AGENTFLOW_DB_POOL_IDLE_TIMEOUT",
}
"""The operator's setting behind each field (named in errors)."""


@dataclass(frozen=True, slots=True)
class DBLimits:
    """Ceilings on every db source of the process; a source config cannot raise them."""

    max_per_source: int = 10
    """Connections one source's pool holds open at most in this process; a source's
    `pool_size + max_overflow` is clamped to it (AGENTFLOW_DB_POOL_MAX_PER_SOURCE)."""
    max_total: int = 20
    """Connections all database pools of this process hold open together at most. Keep
    (processes x this) under each server's `max_connections` (AGENTFLOW_DB_POOL_MAX_TOTAL)."""
    pool_timeout: float = 10.0
    """Seconds a query waits at most for a pooled connection before the node fails with
    `db_pool_exhausted`; a source's `pool_timeout` is clamped to it (AGENTFLOW_DB_POOL_TIMEOUT)."""
    max_rows: int = 10_000
    """Rows one db node returns at most; a node's `max_rows`/`page_size` is clamped to it
    (AGENTFLOW_DB_MAX_ROWS). More rows: the result is cut short and marked `truncated`."""
    max_bytes: int = 5_000_000
    """Bytes of result one db node reads at most (AGENTFLOW_DB_MAX_BYTES). Past it the result
    is cut short and marked `truncated`; one row larger than this fails the node with
    `db_row_too_large` before the row is read."""
    idle_timeout: float = 300.0
    """Seconds an unused pooled connection stays open; a pool left with none is dropped
    (AGENTFLOW_DB_POOL_IDLE_TIMEOUT)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{SETTINGS[field.name]} must be a positive number: {value!r}")


_current = DBLimits()


def db_limits() -> DBLimits:
    """The ceilings in force in this process."""
    return _current


def configure(limits: DBLimits | None = None, **changes: Any) -> DBLimits:
    """Set the process's ceilings: a whole `DBLimits`, or some of its fields changed.

    Raises:
        ValueError: a ceiling is not positive.
        TypeError: a field name is unknown.
    """
    global _current
    _current = dataclasses.replace(limits or _current, **changes)
    return _current
