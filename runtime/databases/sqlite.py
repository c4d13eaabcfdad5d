"""SQLite sources: a file in the tenant's own directory under the operator's SQLite root
(`AGENTFLOW_SQLITE_ROOT/t<tenant id>/`), opened read-only, for demos.

A tenant reads only its own directory: a path that leaves it (`..`, absolute, a link) and a
file that does not exist get the same answer, so that no tenant learns which files others have.
Read-only four ways: the file is opened with `mode=ro`, `PRAGMA query_only` is on, an
authorizer lets the statement only read and call functions (no ATTACH, no PRAGMA, no write),
and the driver runs exactly one statement per call. A progress handler enforces the timeout,
and SQLite's own length limit keeps any one value under the byte cap.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from runtime.databases.base import (
    DatabaseError,
    FileNotFound,
    Query,
    QueryTimeout,
    ReadOnlyViolationError,
    Rows,
    row_too_large,
)
from runtime.databases.limits import db_limits
from runtime.source_configs import SQLiteConfig

WRITE_ERRORS = re.compile(r"readonly|read-only|query_only|attempt to write", re.IGNORECASE)
DEFAULT_TIMEOUT_MS = 5000
# The spec's placeholders are `%(name)s` (as for postgres and mysql); sqlite3 binds `:name`.
PYFORMAT = re.compile(r"%\((\w+)\)s")


TENANT_DIRECTORY = re.compile(r"[A-Za-z0-9_-]{1,64}")
READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
"""What the authorizer lets a tenant's statement do: read tables and call functions."""
DENIED = frozenset({"not authorized", "authorization denied"})
"""SQLite's messages for what the authorizer refused (at prepare time, or at run time)."""


class SQLiteDatabase:
    def __init__(self, config: SQLiteConfig, directory: Path | None) -> None:
        """`directory`: the tenant's own; None (no tenant known) reads no file at all."""
        self.name = config.path
        self.directory = directory

    async def select(self, query: Query) -> Rows:
        return await asyncio.to_thread(self._select, query)

    def _select(self, query: Query) -> Rows:
        path = _own_file(self.directory, self.name)
        deadline = time.monotonic() + (query.timeout_ms or DEFAULT_TIMEOUT_MS) / 1000
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        max_bytes = db_limits().max_bytes
        try:
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_bytes)
            conn.execute("PRAGMA query_only = ON")
            conn.set_authorizer(_only_reads)
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            cursor = conn.execute(PYFORMAT.sub(r":\1", query.sql), dict(query.params))
            columns = [d[0] for d in cursor.description or ()]
            if query.offset:
                cursor.fetchmany(query.offset)
            fetched = cursor.fetchmany(query.max_rows + 1)
        except sqlite3.OperationalError as exc:
            raise _error(exc, time.monotonic() > deadline) from exc
        except sqlite3.DataError as exc:  # a string or blob past SQLITE_LIMIT_LENGTH
            raise row_too_large(max_bytes) from exc
        except (sqlite3.Error, sqlite3.Warning) as exc:  # e.g. several statements, bad binding
            raise _refused(exc) from exc
        finally:
            conn.close()
        rows = [dict(zip(columns, row, strict=True)) for row in fetched[: query.max_rows]]
        return Rows(columns, rows, truncated=len(fetched) > query.max_rows)


def _error(exc: sqlite3.OperationalError, late: bool) -> Exception:
    if late or "interrupted" in str(exc):
        return QueryTimeout("The query ran past its timeout and was stopped.")
    if str(exc) in DENIED:
        return _denied()
    if WRITE_ERRORS.search(str(exc)):
        return ReadOnlyViolationError(f"The db node only reads; SQLite refused a write: {exc}")
    return DatabaseError(f"SQLite refused the query: {exc}")


def _refused(exc: Exception) -> Exception:
    return _denied() if str(exc) in DENIED else DatabaseError(f"SQLite refused the query: {exc}")


def _denied() -> ReadOnlyViolationError:
    return ReadOnlyViolationError(
        "The db node only reads: its SQLite query may read tables and call functions, "
        "nothing else (no write, ATTACH or PRAGMA)."
    )


def _only_reads(action: int, *_args: Any) -> int:
    return sqlite3.SQLITE_OK if action in READ_ACTIONS else sqlite3.SQLITE_DENY


def _own_file(directory: Path | None, name: str) -> Path:
    """`name` resolved in the tenant's directory. Missing, a directory, or outside it (`..`,
    absolute, a link that leaves it): one answer, so that no tenant learns which files exist."""
    if directory is not None:
        resolved = (directory / name).resolve()
        if resolved.is_relative_to(directory.resolve()) and resolved.is_file():
            return resolved
    raise FileNotFound(
        f"The SQLite file {name!r} is not among this tenant's files; the operator places them "
        "in the tenant's own directory, AGENTFLOW_SQLITE_ROOT/t<tenant id>/."
    )


def tenant_directory(root: Path, tenant: str) -> Path | None:
    """The tenant's own directory under `root` (`tenant` as in `RunContext.tenant`, `t42`);
    None for no tenant or a name that is not a plain directory name."""
    return root / tenant if TENANT_DIRECTORY.fullmatch(tenant) else None


def sqlite_factory(root: Path, tenant: str = "") -> Any:
    directory = tenant_directory(root, tenant)

    def build(config: SQLiteConfig, _env: Any) -> SQLiteDatabase:
        return SQLiteDatabase(config, directory)

    return build
