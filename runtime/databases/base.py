"""What the db node asks of a database adapter: run one read-only SELECT with bound values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.errors import ConnectionFailed, DatabaseError, QueryTimeout
from runtime.errors import ReadOnlyViolation as ReadOnlyViolationError

# The database errors live in runtime/errors.py with every other; re-exported for the adapters.
__all__ = ["ConnectionFailed", "DatabaseError", "QueryTimeout", "ReadOnlyViolationError"]


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    params: Mapping[str, Any]
    """Values bound by the driver, never spliced into the SQL text."""
    max_rows: int
    offset: int = 0
    timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Rows:
    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool

    def as_result(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": self.rows,
            "row_count": len(self.rows),
            "truncated": self.truncated,
        }


class Database(Protocol):
    async def select(self, query: Query) -> Rows: ...


DEFAULT_MAX_RESULT_BYTES = 5_000_000
"""Rows past this JSON size are left out and the result is marked `truncated`."""
