"""A least-recently-used cache bounded by the total weight of its entries, not only their count:
a tenant's few huge templates must not pin hundreds of megabytes of compiled code."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

_MISSING = object()


class WeightedCache[V]:
    """Values by source text, evicting the least recently used past `max_weight()` (read at every
    insert, so `configure` takes effect) or `max_entries`."""

    def __init__(self, max_weight: Callable[[], int], *, overhead: int, max_entries: int = 4096):
        self._max_weight = max_weight
        self._overhead = overhead
        self._max_entries = max_entries
        self._entries: OrderedDict[str, V] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: str, make: Callable[[str], V]) -> V:
        """The value for `key`, made with `make(key)` (outside the lock) when not cached."""
        found = self._entries.get(key, _MISSING)  # one atomic step under the GIL: no lock
        if found is not _MISSING:
            try:  # noqa: SIM105 (contextlib.suppress costs a microsecond a render)
                self._entries.move_to_end(key)
            except KeyError:  # evicted meanwhile by another thread
                pass
            return found  # type: ignore[return-value]
        value = make(key)
        self._put(key, value)
        return value

    def _put(self, key: str, value: V) -> None:
        weight = len(key) + self._overhead
        limit = self._max_weight()
        if weight > limit:
            return
        with self._lock:
            if key not in self._entries:
                self._weight += weight
            self._entries[key] = value
            while self._weight > limit or len(self._entries) > self._max_entries:
                old, _ = self._entries.popitem(last=False)
                self._weight -= len(old) + self._overhead

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._weight = 0

    @property
    def weight(self) -> int:
        return self._weight

    def __len__(self) -> int:
        return len(self._entries)
