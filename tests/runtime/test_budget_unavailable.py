"""A daily budget whose count (Redis) does not answer: asked again for as long as a node may
wait, then the call is refused naming the cause; a settle after a call never fails it. On a real
Redis client pointed where nothing listens (no fake Redis), with an injected sleep."""

import asyncio
from datetime import UTC, date, datetime

import pytest

from runtime.budget import BudgetUnavailable, DailyBudget, DailyLimits, Hold, RedisLedger, Spend
from runtime.ratelimit import Limit, RedisLimiter

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens there: refused at once


def _budget(pauses: list[float], max_wait: float) -> DailyBudget:
    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    limits = DailyLimits(tokens=1000)
    return DailyBudget(RedisLedger(NOWHERE, "t1"), limits, max_wait=max_wait, sleep=sleep)


def test_a_budget_that_cannot_be_checked_refuses_the_call_after_the_max_wait() -> None:
    pauses: list[float] = []
    budget = _budget(pauses, max_wait=5.0)
    with pytest.raises(BudgetUnavailable) as refused:
        asyncio.run(budget.reserve("w", Spend(tokens=10)))
    assert refused.value.code == "budget_unavailable"
    assert refused.value.node_id == "w"
    assert "could not be checked" in str(refused.value)
    assert "ConnectionError" in str(refused.value)  # the cause, named
    assert pauses == [0.25, 0.5, 1.0, 2.0]  # asked again, doubling, within the 5 s
    assert sum(pauses) <= 5.0


def test_a_settle_that_cannot_reach_the_count_keeps_the_answered_call() -> None:
    budget = _budget([], max_wait=5.0)
    hold = Hold(datetime.now(UTC).date(), Spend(tokens=10))
    asyncio.run(budget.settle(hold, Spend(tokens=4)))  # logged and dropped: no exception


def test_a_rate_limit_settle_that_cannot_reach_redis_keeps_the_answered_call() -> None:
    limit = Limit("max_tokens_per_minute", 1000.0, 60.0)
    asyncio.run(RedisLimiter(NOWHERE).adjust("agentflow:rl:t1:lane", [(limit, -50.0)]))


def test_a_reachable_count_is_unaffected(requires_redis: str) -> None:
    budget = DailyBudget(RedisLedger(requires_redis, "t-unavailable-test"), DailyLimits(tokens=5))
    day = date(2000, 1, 1)
    budget.now = lambda: datetime(2000, 1, 1, tzinfo=UTC)

    async def spend() -> Hold:
        try:
            hold = await budget.reserve("w", Spend(tokens=3))
            await budget.ledger.give(day, -hold.spend)  # leave the count as it was
            return hold
        finally:
            await budget.aclose()

    assert asyncio.run(spend()) == Hold(day, Spend(tokens=3))
