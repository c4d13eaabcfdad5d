"""What the db node asks of a database adapter: run one read-only SELECT with bound values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.errors import ConnectionFailed, DatabaseError, QueryTimeout
from runtime.errors import ReadOnlyViolation as ReadOnlyViolationError

# The database errors live in runtime/errors.py with every other; re-exported for the adapters.
__all__ = [
    "ConnectionFailed",
    "DatabaseError",
    "FileNotFound",
    "FunctionNotAllowed",
    "PoolExhausted",
    "PrivilegedRole",
    "QueryTimeout",
    "ReadOnlyViolationError",
    "RowTooLarge",
]


class PoolExhausted(DatabaseError):
    """No pooled connection came free in time: the source's or the process's cap is reached.
    A retry may find one free."""

    code = "db_pool_exhausted"
    retryable = True


class RowTooLarge(DatabaseError):
    """One row of the result is larger than the operator's byte cap; it was never read."""

    code = "db_row_too_large"


class FunctionNotAllowed(ReadOnlyViolationError):
    """The query calls a function (or operator) that is not on the allow-list: the built-in
    list of functions that only compute, plus what the operator added. A read-only violation,
    with a code of its own so that a client can tell it apart."""

    code = "db_function_not_allowed"


class PrivilegedRole(DatabaseError):
    """The source's database role can undo every guard (a superuser, or one that reads and
    writes the server's files) and the operator has not allowed such roles."""

    code = "db_privileged_role"


class FileNotFound(DatabaseError):
    """A sqlite source names no file of this tenant's (missing, or outside its directory: the
    same answer for both, so that a tenant cannot learn which other files exist)."""

    code = "db_file_not_found"


def row_too_large(max_bytes: int) -> RowTooLarge:
    return RowTooLarge(
        f"A row of the result is larger than {max_bytes} bytes, the most one db node reads "
        "(AGENTFLOW_DB_MAX_BYTES); select fewer or shorter columns (e.g. left(col, 1000))."
    )


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
