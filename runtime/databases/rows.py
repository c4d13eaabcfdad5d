"""Collect a query's rows the same way for every adapter: page offset, row cap, byte cap.

Adapters stream rows from the driver into a `RowCollector` and stop as soon as it says it is
full, so a huge result is never read into memory.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from runtime.databases.base import DEFAULT_MAX_RESULT_BYTES, Query, Rows


class RowCollector:
    """Skip `query.offset` rows, keep up to `query.max_rows`, and notice when more exist."""

    def __init__(
        self, columns: list[str], query: Query, max_bytes: int = DEFAULT_MAX_RESULT_BYTES
    ) -> None:
        self.columns = columns
        self.rows: list[dict[str, Any]] = []
        self.truncated = False
        self._to_skip = query.offset
        self._max_rows = query.max_rows
        self._bytes_left = max_bytes

    def add(self, values: Sequence[Any]) -> bool:
        """Take one row; False once the collector is full (the caller stops fetching)."""
        if self._to_skip:
            self._to_skip -= 1
            return True
        if len(self.rows) >= self._max_rows:
            self.truncated = True
            return False
        row = {name: json_safe(value) for name, value in zip(self.columns, values, strict=True)}
        self._bytes_left -= len(json.dumps(row, ensure_ascii=False))
        if self._bytes_left < 0:
            self.truncated = True
            return False
        self.rows.append(row)
        return True

    def result(self) -> Rows:
        return Rows(self.columns, self.rows, truncated=self.truncated)


def json_safe(value: Any) -> Any:
    """A value the state (JSON) can hold: decimals, dates, UUIDs and bytes become text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def _decimal(value: Decimal) -> int | float | str:
    """Integral decimals as int, others as float when that round-trips exactly, else text."""
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)
