"""A tenant's daily budget of tokens and cost: one bound for the tenant, whatever runs it starts.

Each provider call reserves what it may use before it is made (`spending`): its prompt (4
characters a token) and its `max_tokens` (or an estimate), and their cost at the model's price.
The reservation is granted only while the day's count — what calls used, plus what calls in
flight reserved — is under every limit, atomically in one place for every process: Redis
(`budget.lua`) or the database (a conditional UPDATE, `executions.services`). After the call
the reservation is replaced by the real usage; a call that failed gives it all back.

So the count passes a limit only by the last reservation granted while it was under: the day's
usage ends over a limit by at most that one reservation, plus whatever calls in flight then use
beyond their own reservations (a prompt of more tokens than its estimate).

While the count cannot be reached (Redis cut off or stalled: each command times out in a
second), a reservation is asked again, ¼ s doubling to 2 s apart, for as long as a node may wait
for a rate limit; then the call is refused (`budget_unavailable`, naming the cause): no call is
made unbudgeted. A settle that cannot be made is logged and dropped, never failing a call that
was answered: the count keeps the reservation (a call that used less stays counted in full), and
what a call used beyond it is counted again from the run records (`DailyLimits.recorded`) when
the next run starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from redis.exceptions import NoScriptError, RedisError

from runtime import metrics
from runtime.errors import NodeError

LimitName = Literal["token", "cost"]
KEY_PREFIX = "agentflow:budget"
KEY_TTL_S = 2 * 86_400
"""A day's count outlives its day: calls that reserved before midnight settle after it."""
COST_UNIT = 1e-8
"""Redis counts cost in whole units of 1e-8 USD (the precision of a call's cost)."""
CHARS_PER_TOKEN = 4
LUA_SCRIPT = Path(__file__).with_name("budget.lua").read_text()
LUA_SHA = hashlib.sha1(LUA_SCRIPT.encode()).hexdigest()


class BudgetExceeded(NodeError):
    code = "budget_exceeded"


class BudgetUnavailable(NodeError):
    """The day's count could not be read: the call is refused rather than made unbudgeted."""

    code = "budget_unavailable"


class LedgerUnavailable(Exception):
    """The count's store (Redis) did not answer: the take can be tried again."""


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spend:
    """Tokens and USD: what a call may use (a reservation) or used."""

    tokens: int = 0
    cost: float = 0.0

    def __sub__(self, other: Spend) -> Spend:
        return Spend(self.tokens - other.tokens, round(self.cost - other.cost, 8))

    def __neg__(self) -> Spend:
        return Spend(-self.tokens, -self.cost)


def text_tokens(*texts: str) -> int:
    """A prompt's tokens, estimated at 4 characters a token."""
    return sum(math.ceil(len(text) / CHARS_PER_TOKEN) for text in texts)


@dataclass(frozen=True)
class DailyLimits:
    tokens: int | None = None
    """Tokens per UTC day; None: no limit."""
    cost: float | None = None
    """USD per UTC day; None: no limit."""
    day: date | None = None
    """The UTC day `recorded` counts."""
    recorded: Spend = Spend()
    """What the day's finished calls had used when the run started, by the caller's records: a
    day's count never starts below it, whatever the count lost (Redis flushed, a budget set
    in the middle of a day)."""

    @property
    def unlimited(self) -> bool:
        return self.tokens is None and self.cost is None

    def floor(self, day: date) -> Spend:
        return self.recorded if day == self.day else Spend()

    def reached(self, count: Spend) -> LimitName | None:
        """The limit `count` has reached, if any."""
        if self.tokens is not None and count.tokens >= self.tokens:
            return "token"
        if self.cost is not None and count.cost >= self.cost:
            return "cost"
        return None


class Ledger(Protocol):
    """Where a tenant's count for each day is kept, shared by all its runs and processes."""

    async def take(self, day: date, want: Spend, limits: DailyLimits) -> LimitName | None:
        """Add `want` to the day's count (raised to `limits.floor(day)` first) if the count is
        under every limit, atomically; else change nothing and name the limit reached."""
        ...

    async def give(self, day: date, change: Spend) -> None:
        """Add `change` to the day's count, whatever the limits (negative: give back)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Hold:
    """What one reservation took, and from which day's count."""

    day: date | None
    spend: Spend


class Budget(Protocol):
    """What `RunContext.budget` offers the nodes that call providers (through `spending`)."""

    async def reserve(self, node_id: str, want: Spend) -> Hold:
        """Reserve `want` for one call.

        Raises:
            BudgetExceeded: today's count has reached a limit; the call must not be made.
        """
        ...

    async def settle(self, hold: Hold, used: Spend) -> None:
        """Replace a reservation by what the call used (nothing: it failed)."""
        ...

    async def aclose(self) -> None: ...


class Unlimited:
    """No budget: nothing is counted."""

    async def reserve(self, node_id: str, want: Spend) -> Hold:
        return Hold(None, Spend())

    async def settle(self, hold: Hold, used: Spend) -> None:
        return None

    async def aclose(self) -> None:
        return None


UNLIMITED = Unlimited()

_REFUSALS = {
    "token": "The tenant's daily token budget is used up",
    "cost": "The tenant's daily cost budget is used up",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DailyBudget:
    """A tenant's limits per UTC day, counted in a `Ledger`."""

    def __init__(
        self,
        ledger: Ledger,
        limits: DailyLimits,
        now: Callable[[], datetime] = _utcnow,
        *,
        max_wait: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ledger, self.limits, self.now = ledger, limits, now
        self.max_wait, self.sleep = max_wait, sleep

    async def reserve(self, node_id: str, want: Spend) -> Hold:
        day = self.now().astimezone(UTC).date()
        take = asyncio.ensure_future(self._take(node_id, day, want))
        try:
            reached = await asyncio.shield(take)
        except asyncio.CancelledError:  # the run stopped mid-take: give back what it took
            with contextlib.suppress(Exception):  # (Redis away: not waited for, and kept)
                if await asyncio.wait_for(take, 2.0) is None:
                    await self.ledger.give(day, -want)
            raise
        if reached is not None:
            metrics.budget_refused(reached)
            raise BudgetExceeded(
                f"{_REFUSALS[reached]} (or reserved by calls in flight); the call was not made. "
                "It resets at midnight UTC, or an admin can raise it.",
                node_id=node_id,
            )
        return Hold(day, want)

    async def _take(self, node_id: str, day: date, want: Spend) -> LimitName | None:
        """The ledger's answer; while it does not answer, asked again (0.25 s, doubling to 2 s
        apart) for as long as a node may wait, then refused naming the cause."""
        waited, pause = 0.0, 0.25
        while True:
            try:
                return await self.ledger.take(day, want, self.limits)
            except LedgerUnavailable as exc:
                if waited + pause > self.max_wait:
                    raise BudgetUnavailable(
                        "The tenant's daily budget could not be checked: its count (Redis) did "
                        f"not answer for {waited:.1f} s ({exc}). The call was not made; try "
                        "again when it is back.",
                        node_id=node_id,
                    ) from None
                await self.sleep(pause)
                waited += pause
                pause = min(pause * 2, 2.0)

    async def settle(self, hold: Hold, used: Spend) -> None:
        if hold.day is None or used == hold.spend:
            return
        try:
            await self.ledger.give(hold.day, used - hold.spend)
        except LedgerUnavailable as exc:  # the call was made: its answer is kept
            log.warning(
                "budget.settle_lost", extra={"error": str(exc), "change": used - hold.spend}
            )

    async def aclose(self) -> None:
        await self.ledger.aclose()


@dataclass
class Meter:
    used: Spend = Spend()
    """What the call used: set it as soon as the provider has answered."""


@contextlib.asynccontextmanager
async def spending(budget: Budget, node_id: str, want: Spend) -> AsyncIterator[Meter]:
    """Reserve `want` for the provider call made in the block, then settle `meter.used`.

    Raises:
        BudgetExceeded: before the block, which then does not run.
    """
    hold = await budget.reserve(node_id, want)
    meter = Meter()
    try:
        yield meter
    finally:  # shielded: a cancelled run still settles what its call used
        await asyncio.shield(budget.settle(hold, meter.used))


# --- in Redis --------------------------------------------------------------------------------


_REPLIES: dict[int, LimitName | None] = {0: None, 1: "token", 2: "cost"}


def _units(cost: float | None) -> int:
    return -1 if cost is None else round(cost / COST_UNIT)


class RedisLedger:
    """The counts in Redis, one hash per tenant and day; one EVALSHA of `budget.lua` per take
    or give, atomic across processes. Its client belongs to the event loop that first used it:
    one per run, closed by the run (`RunContext.aclose`)."""

    def __init__(self, url: str, tenant: str, *, client: Any = None) -> None:
        self.url, self.tenant = url, tenant
        self._client: Any = client

    def key(self, day: date) -> str:
        return f"{KEY_PREFIX}:{self.tenant}:{day.isoformat()}"

    async def take(self, day: date, want: Spend, limits: DailyLimits) -> LimitName | None:
        floor = limits.floor(day)
        limit_args = (limits.tokens if limits.tokens is not None else -1, _units(limits.cost))
        reply = await self._eval(day, "take", want, *limit_args, floor.tokens, _units(floor.cost))
        return _REPLIES[int(reply)]

    async def give(self, day: date, change: Spend) -> None:
        await self._eval(day, "give", change)

    async def _eval(self, day: date, mode: str, spend: Spend, *extra: int) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis  # only where Redis is configured

            # A stalled Redis fails a command within a second (and a take is asked again),
            # instead of holding the run for as long as the stall lasts.
            self._client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=1, socket_timeout=1
            )
        args = (mode, spend.tokens, _units(spend.cost), KEY_TTL_S, *extra)
        try:
            try:
                return await self._client.execute_command(
                    "EVALSHA", LUA_SHA, 1, self.key(day), *args
                )
            except NoScriptError:
                return await self._client.execute_command(
                    "EVAL", LUA_SCRIPT, 1, self.key(day), *args
                )
        except (RedisError, OSError) as exc:
            await self.aclose()  # a fresh client (and connection) for the next try
            raise LedgerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
