"""SQLite sources: a file under the operator's SQLite root, opened read-only, for demos.

Read-only three ways: the file is opened with `mode=ro`, `PRAGMA query_only` is on, and the
driver runs exactly one statement per call. A progress handler enforces the timeout, and
SQLite's own length limit keeps any one value under the byte cap.
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


class SQLiteDatabase:
    def __init__(self, config: SQLiteConfig, root: Path) -> None:
        self.path = _inside(root, config.path)

    async def select(self, query: Query) -> Rows:
        return await asyncio.to_thread(self._select, query)

    def _select(self, query: Query) -> Rows:
        if not self.path.is_file():
            raise DatabaseError(f"The SQLite file {self.path.name} does not exist.")
        deadline = time.monotonic() + (query.timeout_ms or DEFAULT_TIMEOUT_MS) / 1000
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        max_bytes = db_limits().max_bytes
        try:
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_bytes)
            conn.execute("PRAGMA query_only = ON")
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
            raise DatabaseError(f"SQLite refused the query: {exc}") from exc
        finally:
            conn.close()
        rows = [dict(zip(columns, row, strict=True)) for row in fetched[: query.max_rows]]
        return Rows(columns, rows, truncated=len(fetched) > query.max_rows)


def _error(exc: sqlite3.OperationalError, late: bool) -> Exception:
    if late or "interrupted" in str(exc):
        return QueryTimeout("The query ran past its timeout and was stopped.")
    if WRITE_ERRORS.search(str(exc)):
        return ReadOnlyViolationError(f"The db node only reads; SQLite refused a write: {exc}")
    return DatabaseError(f"SQLite refused the query: {exc}")


def _inside(root: Path, name: str) -> Path:
    """`name` resolved under `root`; a path that leaves it (.., absolute, links) is refused."""
    resolved = (root / name).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise DatabaseError(
            f"The SQLite path {name!r} is outside the directory the operator allows."
        )
    return resolved


def sqlite_factory(root: Path) -> Any:
    def build(config: SQLiteConfig, _env: Any) -> SQLiteDatabase:
        return SQLiteDatabase(config, root)

    return build
