"""Queue bandwidth as token buckets shared by every process of a tenant (SPEC §5 "Queues").

Each limit of a queue is one bucket, kept as a GCRA "theoretical arrival time" (TAT): one number
per bucket, whatever the traffic. Taking is a *reservation*: when the bucket is short, the taker
is given a later slot at once and sleeps until it (FIFO backpressure, one round trip, no polling),
unless that slot is further away than its max wait; then nothing is taken and the caller fails
with `rate_limited`. Settling (an LLM call's real token count) moves the TAT back or forth
without waiting; a settle Redis does not answer is logged and dropped, never failing the call it
follows. All limits of one take are checked and taken together, or not at all.

`RedisLimiter` runs the same arithmetic as one Lua script (one EVALSHA per take, Redis's own
clock), so it is atomic across web and worker processes; `MemoryLimiter` keeps it in the process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from redis.exceptions import NoScriptError, RedisError

from runtime import metrics
from runtime.errors import RateLimited
from runtime.spec import Bandwidth, Queue

KEY_PREFIX = "agentflow:rl"
LUA_SCRIPT = (Path(__file__).with_name("ratelimit.lua")).read_text()
LUA_SHA = hashlib.sha1(LUA_SCRIPT.encode()).hexdigest()
_PERIODS = {
    "max_messages_per_second": ("messages", 1.0, "second"),
    "max_requests_per_minute": ("requests", 60.0, "minute"),
    "max_tokens_per_minute": ("tokens", 60.0, "minute"),
}


log = logging.getLogger(__name__)


class LimiterUnavailable(Exception):
    """The buckets' store (Redis) did not answer: the take can be tried again."""


@dataclass(frozen=True)
class Limit:
    """One token bucket of a queue."""

    setting: str
    """The bandwidth field it comes from (`max_requests_per_minute`): named in errors."""
    amount: float
    """The field's value: units allowed per period."""
    period: float
    """The period in seconds (1 or 60)."""

    @property
    def name(self) -> str:
        """The bucket's short name in keys: `messages`, `requests` or `tokens`."""
        return _PERIODS[self.setting][0]

    @property
    def rate(self) -> float:
        """Units the bucket regains per second."""
        return self.amount / self.period

    @property
    def burst(self) -> float:
        """What a full bucket holds: one period's allowance. In any window of T seconds at most
        `burst + rate * T` units pass; steadily, `amount` per period."""
        return max(self.amount, 1.0)

    @cached_property
    def lua_args(self) -> tuple[str, str]:
        """The script's arguments for this bucket: microseconds per unit, and the tolerance."""
        return repr(1e6 / self.rate), repr(self.burst * 1e6 / self.rate)

    def describe(self) -> str:
        return f"{self.setting} = {self.amount:g} per {_PERIODS[self.setting][2]}"


@dataclass(frozen=True)
class QueueLimits:
    """The buckets of one queue, built from its `bandwidth`."""

    queue_id: str
    limits: tuple[Limit, ...]

    @classmethod
    def from_bandwidth(cls, queue_id: str, bandwidth: Bandwidth) -> QueueLimits:
        limits = tuple(
            Limit(setting, float(value), _PERIODS[setting][1])
            for setting in _PERIODS
            if (value := getattr(bandwidth, setting)) is not None
        )
        return cls(queue_id, limits)

    @classmethod
    def from_queue(cls, queue: Queue) -> QueueLimits:
        return cls.from_bandwidth(queue.id, queue.bandwidth)

    def get(self, name: str) -> Limit | None:
        return next((limit for limit in self.limits if limit.name == name), None)

    def key(self, tenant: str) -> str:
        return f"{KEY_PREFIX}:{tenant}:{self.queue_id}"


Demand = Sequence[tuple[Limit, float]]
"""What one take asks for: each limit with its weight (1 message, 1 request, N tokens)."""


@dataclass(frozen=True)
class Reservation:
    granted: bool
    wait: float
    """Seconds until the slot (granted), or that the slot would have needed (refused)."""
    limit: Limit | None = None
    """The limit that set the wait, or that can never hold the weight asked."""
    never: bool = False
    """Refused because the weight is more than the bucket holds, whatever the wait."""
    now: float | None = None
    """The bucket's own clock when it decided, in seconds (Redis's TIME, or this process's
    monotonic clock): a granted slot is at `now + wait` on that clock, whatever the caller's."""


class Limiter(Protocol):
    async def reserve(self, key: str, demand: Demand, max_wait: float) -> Reservation:
        """Take `demand` from the buckets `key:<limit name>` now or at a slot at most `max_wait`
        seconds away, all or nothing."""
        ...

    async def adjust(self, key: str, demand: Demand) -> None:
        """Charge (positive weights) or refund (negative) without waiting: settling."""
        ...

    async def aclose(self) -> None: ...


# --- in the process ------------------------------------------------------------------------


class MemoryLimiter:
    """The buckets in this process's memory (no REDIS_URL): the same arithmetic as the Lua."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()  # runs on several threads' event loops share it

    async def reserve(self, key: str, demand: Demand, max_wait: float) -> Reservation:
        with self._lock:
            return self._take(key, demand, max_wait, force=False)

    async def adjust(self, key: str, demand: Demand) -> None:
        with self._lock:
            self._take(key, demand, math.inf, force=True)

    async def aclose(self) -> None:
        return None

    def available(self, key: str, limit: Limit) -> float:
        """Units the bucket holds now (negative: owed to takers already given a slot)."""
        tat = max(self._tats.get(f"{key}:{limit.name}", -math.inf), self.clock())
        return limit.burst - (tat - self.clock()) * limit.rate

    def _take(self, key: str, demand: Demand, max_wait: float, *, force: bool) -> Reservation:
        now = self.clock()
        wait, blocking, tats = 0.0, None, []
        for limit, weight in demand:
            tat = max(self._tats.get(f"{key}:{limit.name}", now), now)
            if not force and weight > limit.burst:
                return Reservation(False, math.inf, limit, never=True)
            new_tat = max(tat + weight / limit.rate, now)
            needed = new_tat - limit.burst / limit.rate - now
            if needed > wait:
                wait, blocking = needed, limit
            tats.append((f"{key}:{limit.name}", new_tat))
        if not force and wait > max_wait:
            return Reservation(False, wait, blocking)
        self._tats.update(tats)
        return Reservation(True, wait, blocking, now=now)


# --- in Redis --------------------------------------------------------------------------------


class RedisLimiter:
    """The buckets in Redis: one EVALSHA of `ratelimit.lua` per take, atomic across processes.

    Its client belongs to the event loop that first used it: make one per run (`RunContext`
    does) or per process loop, and `aclose()` it on that loop.
    """

    def __init__(self, url: str, *, client: Any = None) -> None:
        self.url = url
        self._client: Any = client

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis  # only where Redis is configured

            # A stalled Redis fails a take within a second (and it is tried again) instead of
            # holding the run for as long as the stall lasts.
            self._client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=1, socket_timeout=1
            )
        return self._client

    async def reserve(self, key: str, demand: Demand, max_wait: float) -> Reservation:
        reply = await self._call(key, demand, max_wait, force=False)
        granted, wait_us, index = int(reply[0]), int(reply[1]), int(reply[2])
        limit = demand[index - 1][0] if index > 0 else None
        if granted < 0:
            return Reservation(False, math.inf, limit, never=True)
        return Reservation(bool(granted), wait_us / 1e6, limit, now=int(reply[3]) / 1e6)

    async def adjust(self, key: str, demand: Demand) -> None:
        try:
            await self._call(key, demand, math.inf, force=True)
        except LimiterUnavailable as exc:  # after a call: its answer is kept, the change lost
            log.warning("ratelimit.adjust_lost", extra={"key": key, "error": str(exc)})

    async def _call(self, key: str, demand: Demand, max_wait: float, *, force: bool) -> Any:
        keys = [f"{key}:{limit.name}" for limit, _ in demand]
        args: list[float | int | str] = [-1 if math.isinf(max_wait) else round(max_wait * 1e6)]
        args.append(int(force))
        for limit, weight in demand:
            args += [*limit.lua_args, weight]
        client = self._redis()
        # EVALSHA straight through the client (the script helper costs ~10 µs a call); EVAL
        # once when the server does not know the script (restarted, flushed, failed over).
        try:
            try:
                return await client.execute_command("EVALSHA", LUA_SHA, len(keys), *keys, *args)
            except NoScriptError:
                return await client.execute_command("EVAL", LUA_SCRIPT, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            await self.aclose()  # a fresh client (and connection) for the next try
            raise LimiterUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


# --- taking ----------------------------------------------------------------------------------

MEMORY = MemoryLimiter()
"""The process's buckets when there is no Redis: shared by every run in this process."""


def default_limiter() -> Limiter:
    """Redis when REDIS_URL is set (a limiter per run: its client is bound to the run's loop),
    else the process's memory."""
    url = os.environ.get("REDIS_URL", "")
    return RedisLimiter(url) if url else MEMORY


async def take(
    limiter: Limiter,
    sleep: Callable[[float], Awaitable[None]],
    *,
    key: str,
    queue_id: str,
    demand: Demand,
    max_wait: float,
    node_id: str,
) -> float:
    """Take `demand` from a queue's buckets, waiting (through `sleep`) for a slot if need be.

    Returns:
        The seconds waited (the backpressure the trace shows).

    Raises:
        RateLimited: the slot is further than `max_wait`, or the weight never fits the bucket.
    """
    demand = [(limit, weight) for limit, weight in demand if weight]
    if not demand:
        return 0.0
    try:
        reservation = await _reserve(limiter, sleep, key, queue_id, demand, max_wait, node_id)
    except RateLimited:
        metrics.rate_limit_refused(queue_id)
        raise
    if not reservation.granted:
        metrics.rate_limit_refused(queue_id)
        raise RateLimited(_refusal(queue_id, demand, reservation, max_wait), node_id=node_id)
    metrics.rate_limit_waited(queue_id, reservation.wait)
    if reservation.wait > 0:
        try:
            await sleep(reservation.wait)
        except asyncio.CancelledError:  # the run was stopped: give the slot back
            await asyncio.shield(limiter.adjust(key, [(lim, -w) for lim, w in demand]))
            raise
    return max(reservation.wait, 0.0)


async def _reserve(
    limiter: Limiter,
    sleep: Callable[[float], Awaitable[None]],
    key: str,
    queue_id: str,
    demand: Demand,
    max_wait: float,
    node_id: str,
) -> Reservation:
    """The reservation; while the store does not answer, asked again (0.25 s, doubling to 2 s
    apart) for as long as the run may wait for its queue, then refused naming the cause."""
    waited, pause = 0.0, 0.25
    while True:
        try:
            return await limiter.reserve(key, demand, max(0.0, max_wait - waited))
        except LimiterUnavailable as exc:
            if waited + pause > max_wait:
                raise RateLimited(
                    f"Queue '{queue_id}' could not be checked: the rate-limit store (Redis) did "
                    f"not answer for {waited:.1f} s ({exc}). The node was not run; try again "
                    "when it is back.",
                    node_id=node_id,
                ) from None
            await sleep(pause)
            waited += pause
            pause = min(pause * 2, 2.0)


def _refusal(queue_id: str, demand: Demand, reservation: Reservation, max_wait: float) -> str:
    limit = reservation.limit
    setting = limit.describe() if limit else "its bandwidth"
    if reservation.never and limit is not None:
        weight = dict((lim.name, w) for lim, w in demand)[limit.name]
        return (
            f"Queue '{queue_id}' can never pass {weight:g} {limit.name} at once: its bucket holds "
            f"{limit.burst:g} ({setting}). Raise {limit.setting} or ask for less (max_tokens)."
        )
    return (
        f"Queue '{queue_id}' is out of {limit.name if limit else 'capacity'} ({setting}): the "
        f"next slot is {reservation.wait:.1f} s away, longer than the {max_wait:g} s this run "
        "may wait. The node was not run; try again later or raise the queue's bandwidth."
    )
