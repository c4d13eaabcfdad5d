"""Provider adapters kept between the runs of one event loop: the process's runtime loop.

An SDK client holds a connection pool. Built per run, every run paid a new TCP (and TLS)
handshake to its provider and closed the pool at its end. On the runtime loop
(`runtime.loop`) a run leases its adapters from `SharedAdapters` instead, and the next run with
the same key gets the same adapter, client and open connections.

A key is (tenant, source kind, factory, the source's config, a digest of the credentials'
values, the egress policy): different tenants, configs, credentials or trusted hosts never share
an adapter, and a rotated key (or a changed trust) gets a new one. The adapter reads its
credentials from a snapshot taken for its key, so it always sends the credential its key
stands for. Adapters in use are never closed; idle ones are
closed when more than `max_idle` are kept, or after `idle_seconds` unused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from runtime.egress.trust import EgressPolicy
from runtime.providers.base import EnvLookup

logger = logging.getLogger(__name__)

AdapterKey = tuple[str, str, Callable[..., Any], str, str, EgressPolicy | None]
"""(tenant, kind, factory, config JSON, sha256 of the credentials' values, egress policy)."""


def credential_names(config: Any) -> list[str]:
    """The environment variables a validated source config names (its `*_env` fields)."""
    names = (getattr(config, name) for name in type(config).model_fields if name.endswith("_env"))
    return sorted({name for name in names if isinstance(name, str) and name})


def adapter_key(
    tenant: str,
    kind: str,
    factory: Callable[..., Any],
    config: Any,
    env: EnvLookup,
    egress: EgressPolicy | None = None,
) -> tuple[AdapterKey, EnvLookup]:
    """The adapter's key, and the snapshot of the credentials it stands for (its EnvLookup)."""
    values = {name: env(name) for name in credential_names(config)}
    digest = hashlib.sha256(json.dumps(sorted(values.items())).encode()).hexdigest()
    snapshot = {name: value for name, value in values.items() if value is not None}
    key = (tenant, kind, factory, config.model_dump_json(), digest, egress)
    return key, snapshot.get


@dataclass
class _Entry:
    adapter: Any
    users: int = 0
    idle_since: float = 0.0


@dataclass
class SharedAdapters:
    """Adapters by key, leased to runs; see the module docstring."""

    max_idle: int = 64
    """Idle adapters kept at most; the least recently used beyond it are closed."""
    idle_seconds: float = 600.0
    """An adapter unused this long is closed (a rotated key's old client goes away)."""
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[AdapterKey, _Entry] = field(default_factory=OrderedDict)

    def acquire(self, key: AdapterKey, build: Callable[[], Any]) -> Any:
        """The adapter for `key`, built on first use; the caller must `release` the key."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(build())
        self._entries.move_to_end(key)
        entry.users += 1
        return entry.adapter

    def release(self, keys: Iterable[AdapterKey]) -> None:
        """Give leases back (synchronously: a cancelled run's `finally` cannot lose them)."""
        now = self.clock()
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None:
                entry.users -= 1
                entry.idle_since = now

    async def trim(self) -> None:
        """Close the idle adapters unused for `idle_seconds`, and those past `max_idle`."""
        await self._close(self._expired(self.clock()))

    async def aclose(self) -> None:
        """Close every adapter (at the loop's end, and between tests)."""
        entries, self._entries = list(self._entries.values()), OrderedDict()
        await self._close(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _expired(self, now: float) -> list[_Entry]:
        idle = [key for key, entry in self._entries.items() if entry.users <= 0]
        stale = {key for key in idle if now - self._entries[key].idle_since > self.idle_seconds}
        surplus = max(0, len(idle) - self.max_idle)
        doomed = stale | set(idle[:surplus])  # the least recently acquired come first
        return [self._entries.pop(key) for key in idle if key in doomed]

    async def _close(self, entries: list[_Entry]) -> None:
        for entry in entries:
            close = getattr(entry.adapter, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception:  # an idle client that fails to close must not fail a run
                logger.warning("Closing an idle provider client failed.", exc_info=True)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedAdapters] = (
    weakref.WeakKeyDictionary()
)


def shared_adapters() -> SharedAdapters:
    """The running loop's shared adapters (a client belongs to the loop it was first used on)."""
    loop = asyncio.get_running_loop()
    if loop not in _by_loop:
        _by_loop[loop] = SharedAdapters()
    return _by_loop[loop]
