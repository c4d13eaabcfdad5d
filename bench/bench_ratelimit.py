"""The cost of one queue take on Redis, beside a bare EVALSHA round trip in the same run.

Run: `REDIS_URL=redis://127.0.0.1:6379/9 python bench/bench_ratelimit.py [-n 2000]`. One asyncio
redis client (one connection); each round does one bare EVALSHA of `return 1` and one take of
each shape (in turn, so drift hits both alike): the gate's take (1 request) and a two-bucket
take (1 message + 1 request). The buckets are sized never to make a take wait. With
pyrate-limiter installed, its GCRA bucket on Redis (`try_acquire_async`) is measured too.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from runtime.ratelimit import Limit, QueueLimits, RedisLimiter, take  # noqa: E402

BIG = 1e12  # never empties during the run


async def _nothing(_seconds: float) -> None:
    return None


def _pyrate(client: Any, key: str) -> Callable[[], Awaitable[Any]] | None:
    try:
        from pyrate_limiter import Duration, Limiter, Rate
        from pyrate_limiter.abstracts.algorithm import GCRA
        from pyrate_limiter.buckets.redis_state import RedisStateStore
        from pyrate_limiter.buckets.state_bucket import StateBucket
    except ImportError:
        return None
    store = RedisStateStore(client, key)
    bucket = StateBucket([Rate(10**9, Duration.MINUTE)], GCRA(), store)
    limiter = Limiter(bucket)
    return lambda: limiter.try_acquire_async("bench", 1, blocking=False)


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]


async def main(rounds: int, url: str) -> None:
    client = aioredis.Redis.from_url(url)
    bare_sha = await client.script_load("return 1")
    queue = QueueLimits(
        "bench",
        (Limit("max_messages_per_second", BIG, 1.0), Limit("max_requests_per_minute", BIG, 60.0)),
    )
    key = queue.key(f"bench-{uuid.uuid4().hex}")
    limiter = RedisLimiter(url, client=client)
    messages, requests = queue.limits

    def taking(demand: list[tuple[Limit, float]]) -> Callable[[], Awaitable[Any]]:
        return lambda: take(
            limiter, _nothing, key=key, queue_id="bench", demand=demand, max_wait=1, node_id="n"
        )

    subjects: dict[str, Callable[[], Awaitable[Any]]] = {
        "bare EVALSHA (return 1)": lambda: client.evalsha(bare_sha, 0),
        "take: 1 request": taking([(requests, 1.0)]),
        "take: 1 message + 1 request": taking([(messages, 1.0), (requests, 1.0)]),
    }
    pyrate = _pyrate(client, f"{key}:pyrate")
    if pyrate is not None:
        subjects["pyrate-limiter 4.5 GCRA try_acquire"] = pyrate
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for round_ in range(rounds + 200):  # the first 200 warm up
        for name, call in subjects.items():
            start = time.perf_counter()
            await call()
            if round_ >= 200:
                samples[name].append((time.perf_counter() - start) * 1e3)
    await client.aclose()

    bare_p50, bare_p99 = _stats(samples["bare EVALSHA (return 1)"])
    print(f"Redis {url}, {rounds} rounds, one connection, milliseconds")
    print(f"{'':38} {'p50':>7} {'p99':>7} {'p50 ratio':>10} {'p99 ratio':>10}")
    for name, values in samples.items():
        p50, p99 = _stats(values)
        print(f"{name:38} {p50:7.3f} {p99:7.3f} {p50 / bare_p50:9.2f}x {p99 / bare_p99:9.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=2000)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9"
    asyncio.run(main(args.rounds, url))
