"""The must-show: four processes hammer one queue of 60 requests a minute through Redis.

Each process loops for a bounded time taking one request with a short max wait, and records
every attempt. Together they never pass more than the bucket allows in any window, and no
attempt is lost: each one either passed (perhaps after waiting) or failed with `rate_limited`.
"""

import asyncio
import multiprocessing
import time
import uuid
from typing import Any

import pytest

from runtime.errors import RateLimited
from runtime.ratelimit import Limit, QueueLimits, RedisLimiter, take

PROCESSES = 4
SECONDS = 6.0
MAX_WAIT = 1.5
LIMIT = Limit("max_requests_per_minute", 60, 60.0)
JITTER = 0.1
"""Seconds of scheduling slack between Redis's slot and the moment a process records its pass."""


def hammer(url: str, key: str, start_at: float) -> dict[str, Any]:
    return asyncio.run(_hammer(url, key, start_at))


async def _hammer(url: str, key: str, start_at: float) -> dict[str, Any]:
    limiter = RedisLimiter(url)
    records: list[tuple[float, str, float, str]] = []
    attempts = 0
    await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        while time.time() < start_at + SECONDS:
            attempts += 1
            try:
                waited = await take(
                    limiter,
                    asyncio.sleep,
                    key=key,
                    queue_id="llm-lane",
                    demand=[(LIMIT, 1.0)],
                    max_wait=MAX_WAIT,
                    node_id="writer",
                )
            except RateLimited as error:
                records.append((time.time(), error.code, 0.0, error.message))
                await asyncio.sleep(0.02)  # a client's backoff, so the log stays small
            else:
                records.append((time.time(), "passed", waited, ""))
    finally:
        await limiter.aclose()
    return {"attempts": attempts, "records": records}


@pytest.mark.slow
def test_four_processes_never_pass_more_than_the_bucket_allows(requires_redis: str) -> None:
    queue = QueueLimits("llm-lane", (LIMIT,))
    key = queue.key(f"hammer-{uuid.uuid4().hex}")
    start_at = time.time() + 3.0  # the processes start (spawn) before the clock starts
    began = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        results = pool.starmap(hammer, [(requires_redis, key, start_at)] * PROCESSES)
    assert time.monotonic() - began < 15

    records = [r for result in results for r in result["records"]]
    assert len(records) == sum(result["attempts"] for result in results)  # none lost
    assert {outcome for _, outcome, _, _ in records} == {"passed", "rate_limited"}
    for _, outcome, _, message in records:
        if outcome == "rate_limited":
            assert "Queue 'llm-lane'" in message and "max_requests_per_minute" in message
    passes = sorted(t for t, outcome, _, _ in records if outcome == "passed")
    waited = [w for _, outcome, w, _ in records if outcome == "passed" and w > 0]
    assert waited, "after the burst, processes should wait for their slot"
    assert max(waited) <= MAX_WAIT
    for i in range(len(passes)):
        for j in range(i, len(passes)):
            window = passes[j] - passes[i]
            assert j - i + 1 <= LIMIT.burst + LIMIT.rate * (window + JITTER), (i, j, window)
    # The burst, then one a second until the end (the last slot may be up to MAX_WAIT late).
    assert LIMIT.burst + SECONDS - 2 <= len(passes) <= LIMIT.burst + SECONDS + MAX_WAIT + 1
    assert passes[-1] - passes[0] >= SECONDS - 2
    refused = len(records) - len(passes)
    print(  # shown with -s: the numbers the issue asks to see
        f"\nhammer: {len(records)} attempts, {len(passes)} passed ({len(waited)} after waiting, "
        f"longest {max(waited):.3f} s), {refused} rate_limited, over {passes[-1] - passes[0]:.2f} s"
    )
