"""Collect a query's rows the same way for every adapter: page offset, row cap, byte cap.

Adapters stream rows from the driver into a `RowCollector` and stop as soon as it says it is
full, so a huge result is never read into memory. Each adapter also keeps the driver from
reading one oversized row whole (see postgres.py and mysql.py); a row that still gets here
larger than the whole cap fails the same way.
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

from runtime.databases.base import Rows, row_too_large
from runtime.databases.limits import db_limits


class RowCollector:
    """Skip `offset` rows, keep up to `max_rows` and `max_bytes` (as JSON), and notice when
    more exist (`truncated`).

    Raises (from `add`):
        RowTooLarge: one row alone is larger than `max_bytes`.
    """

    def __init__(
        self, columns: list[str], *, max_rows: int, offset: int = 0, max_bytes: int | None = None
    ) -> None:
        self.columns = columns
        self.rows: list[dict[str, Any]] = []
        self.truncated = False
        self._to_skip = offset
        self._max_rows = max_rows
        self._max_bytes = db_limits().max_bytes if max_bytes is None else max_bytes
        self._bytes_left = self._max_bytes

    def add(self, values: Sequence[Any]) -> bool:
        """Take one row; False once the collector is full (the caller stops fetching)."""
        if self._to_skip:
            self._to_skip -= 1
            return True
        if len(self.rows) >= self._max_rows:
            self.truncated = True
            return False
        row = {name: json_safe(value) for name, value in zip(self.columns, values, strict=True)}
        size = len(json.dumps(row, ensure_ascii=False).encode())
        if size > self._max_bytes:
            raise row_too_large(self._max_bytes)
        self._bytes_left -= size
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
