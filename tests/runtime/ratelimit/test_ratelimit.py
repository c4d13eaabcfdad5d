"""Queues as token buckets: the arithmetic on an injected clock, the gate on a queued edge, and
the LLM node reserving then settling its tokens against the fake OpenAI server."""

import asyncio
from typing import Any

import pytest

from runtime.errors import RateLimited
from runtime.ratelimit import Limit, MemoryLimiter, QueueLimits, RedisLimiter, take
from runtime.spec import Bandwidth
from tests.runtime.test_nodes_at_the_wire import openai_source, run

KEY = "agentflow:rl:t:q"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Sleeper:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.slept: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds


def rpm(amount: float) -> Limit:
    return Limit("max_requests_per_minute", amount, 60.0)


def tpm(amount: float) -> Limit:
    return Limit("max_tokens_per_minute", amount, 60.0)


def reserve(limiter: MemoryLimiter, demand: list[tuple[Limit, float]], max_wait: float = 0.0):
    return asyncio.run(limiter.reserve(KEY, demand, max_wait))


def test_a_bandwidth_becomes_one_bucket_per_limit() -> None:
    queue = QueueLimits.from_bandwidth(
        "lane", Bandwidth(max_messages_per_second=2, max_tokens_per_minute=600)
    )
    assert [(lim.name, lim.rate, lim.burst) for lim in queue.limits] == [
        ("messages", 2.0, 2.0),
        ("tokens", 10.0, 600.0),
    ]
    assert queue.key("acme") == "agentflow:rl:acme:lane"


def test_a_full_bucket_passes_its_burst_then_one_per_refill_interval() -> None:
    limiter = MemoryLimiter(clock=FakeClock())
    passed = [reserve(limiter, [(rpm(60), 1)]).granted for _ in range(61)]
    assert passed == [True] * 60 + [False]
    refused = reserve(limiter, [(rpm(60), 1)])
    assert refused.wait == pytest.approx(1.0) and refused.limit == rpm(60)


def test_no_window_ever_passes_more_than_burst_plus_refill() -> None:
    clock = FakeClock()
    limiter, limit, passes = MemoryLimiter(clock=clock), rpm(60), []
    for _ in range(3_000):  # 0.1 s apart for 300 s, never waiting
        if reserve(limiter, [(limit, 1)]).granted:
            passes.append(clock.now)
        clock.now += 0.1
    assert len(passes) == pytest.approx(60 + 300, abs=1)
    for i in range(len(passes)):
        for j in range(i, min(len(passes), i + 200)):
            assert j - i + 1 <= limit.burst + limit.rate * (passes[j] - passes[i]) + 1e-9


def test_a_weighted_take_waits_for_the_tokens_it_lacks() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock=clock)
    assert reserve(limiter, [(tpm(100), 70)]).wait == 0
    short = reserve(limiter, [(tpm(100), 40)], max_wait=60)
    assert short.granted and short.wait == pytest.approx(6.0)  # 10 tokens at 100/60 per s
    assert limiter.available(KEY, tpm(100)) == pytest.approx(-10)
    clock.now += 6
    assert limiter.available(KEY, tpm(100)) == pytest.approx(0)


def test_a_take_is_all_or_nothing_across_limits() -> None:
    limiter = MemoryLimiter(clock=FakeClock())
    assert reserve(limiter, [(tpm(100), 100)]).granted
    refused = reserve(limiter, [(rpm(10), 1), (tpm(100), 50)])
    assert not refused.granted and refused.limit == tpm(100)
    assert limiter.available(KEY, rpm(10)) == 10  # the request was not taken either


def test_settling_refunds_up_to_a_full_bucket_and_charges_beyond_a_reservation() -> None:
    limiter = MemoryLimiter(clock=FakeClock())
    reserve(limiter, [(tpm(100), 90)])
    asyncio.run(limiter.adjust(KEY, [(tpm(100), -72)]))
    assert limiter.available(KEY, tpm(100)) == pytest.approx(82)
    asyncio.run(limiter.adjust(KEY, [(tpm(100), -500)]))
    assert limiter.available(KEY, tpm(100)) == pytest.approx(100)
    asyncio.run(limiter.adjust(KEY, [(tpm(100), 130)]))  # used more than reserved: owed
    assert limiter.available(KEY, tpm(100)) == pytest.approx(-30)


def test_take_sleeps_through_the_injected_sleep_then_fails_past_the_bound() -> None:
    clock = FakeClock()
    limiter, sleep = MemoryLimiter(clock=clock), Sleeper()
    queue = QueueLimits("lane", (rpm(2),))

    def go(max_wait: float) -> float:
        demand = [(queue.limits[0], 1.0)]
        call = take(
            limiter, sleep, key=KEY, queue_id="lane", demand=demand, max_wait=max_wait, node_id="w"
        )
        return asyncio.run(call)

    assert [go(45), go(45), go(45)] == [0.0, 0.0, pytest.approx(30.0)]
    with pytest.raises(RateLimited) as caught:
        go(45)  # the next slot is 60 s away
    assert caught.value.code == "rate_limited" and caught.value.node_id == "w"
    assert "Queue 'lane'" in caught.value.message
    assert "max_requests_per_minute = 2 per minute" in caught.value.message
    assert sleep.slept == [pytest.approx(30.0)]


def test_a_weight_larger_than_the_bucket_fails_at_once_and_says_why() -> None:
    queue = QueueLimits("lane", (tpm(100),))
    call = take(
        MemoryLimiter(clock=FakeClock()),
        Sleeper(),
        key=KEY,
        queue_id="lane",
        demand=[(queue.limits[0], 1_001.0)],
        max_wait=600,
        node_id="w",
    )
    with pytest.raises(RateLimited, match="can never pass 1001 tokens at once"):
        asyncio.run(call)


# --- a queued edge in a compiled workflow ----------------------------------------------------


def queued_spec(bandwidth: dict[str, Any], target: dict[str, Any] | None = None) -> dict[str, Any]:
    node = target or {
        "id": "w",
        "type": "aggregator",
        "metadata": {"strategy": "template", "template": "done: {{ user_input }}"},
    }
    return {
        "name": "queued",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input"}, node],
        "edges": [{"from": "input", "to": "w"}],
        "queues": [{"id": "lane", "from": "input", "to": "w", "bandwidth": bandwidth}],
    }


def w_events(observer: Any) -> list[Any]:
    return [e for e in observer.finished() if e.node_id == "w"]


def test_a_second_run_through_an_empty_queue_fails_at_its_node_with_rate_limited() -> None:
    limiter = MemoryLimiter()
    spec = queued_spec({"max_requests_per_minute": 1})
    ctx = {"limiter": limiter, "tenant": "acme", "max_rate_wait": 0.5}
    first, observer = run(spec, {"user_input": "a"}, **ctx)
    assert first.status == "succeeded", first.error
    assert w_events(observer)[0].details["rate_wait_seconds"] == 0.0
    second, observer = run(spec, {"user_input": "b"}, **ctx)
    assert second.status == "failed"
    assert second.error is not None and second.error["code"] == "rate_limited"
    assert second.error["node_id"] == "w"
    assert "Queue 'lane'" in second.error["message"]
    assert "max_requests_per_minute" in second.error["message"]
    [failed] = w_events(observer)  # the trace shows the node failing, not running
    assert failed.status == "failed" and failed.error["code"] == "rate_limited"
    other_tenant, _ = run(spec, {"user_input": "c"}, **{**ctx, "tenant": "globex"})
    assert other_tenant.status == "succeeded"  # buckets are per tenant


def test_backpressure_waits_and_the_trace_shows_the_wait() -> None:
    limiter, sleep = MemoryLimiter(clock=FakeClock()), Sleeper()
    spec = queued_spec({"max_requests_per_minute": 1, "max_messages_per_second": 5})
    ctx = {"limiter": limiter, "max_rate_wait": 120, "sleep": sleep}
    run(spec, {"user_input": "a"}, **ctx)
    outcome, observer = run(spec, {"user_input": "b"}, **ctx)
    assert outcome.status == "succeeded", outcome.error
    assert w_events(observer)[0].details["rate_wait_seconds"] == pytest.approx(60.0)
    assert sleep.slept == [pytest.approx(60.0)]


# --- the LLM node's tokens ------------------------------------------------------------------


def llm_spec(server: Any, max_tokens: int) -> dict[str, Any]:
    node = {
        "id": "w",
        "type": "llm",
        "metadata": {"source": "gpt", "prompt": "{{ user_input }}", "max_tokens": max_tokens},
    }
    spec = queued_spec({"max_tokens_per_minute": 100}, node)
    spec["sources"] = [openai_source(server)]
    return spec


def test_the_llm_node_reserves_its_tokens_and_settles_the_real_count(openai_server) -> None:
    clock = FakeClock()  # frozen: no refill between the runs
    limiter, sleep = MemoryLimiter(clock=clock), Sleeper()
    spec = llm_spec(openai_server, max_tokens=90)  # reserves 90 + ceil(len("hi") / 4) = 91
    ctx = {"limiter": limiter, "tenant": "acme", "max_rate_wait": 1.0, "sleep": sleep}
    first, observer = run(spec, {"user_input": "hi"}, **ctx)
    assert first.status == "succeeded", first.error
    assert w_events(observer)[0].details["tokens_reserved"] == 91
    used = first.tokens_used  # the fake answers 11 + 7 tokens
    assert used == 18
    lane = QueueLimits("lane", (tpm(100),))
    assert limiter.available(lane.key("acme"), tpm(100)) == pytest.approx(100 - used)  # refunded

    second, _ = run(spec, {"user_input": "hi"}, **ctx)  # 91 > 82 left: a 5.4 s wait > 1 s
    assert second.status == "failed" and second.error is not None
    assert second.error["code"] == "rate_limited" and second.error["node_id"] == "w"
    assert "max_tokens_per_minute" in second.error["message"]
    assert len(openai_server.requests) == 1  # the provider was never called

    third, observer = run(spec, {"user_input": "hi"}, **{**ctx, "max_rate_wait": 30.0})
    assert third.status == "succeeded", third.error
    waited = w_events(observer)[0].details["rate_wait_seconds"]
    assert waited == pytest.approx((91 - 82) / (100 / 60))
    assert sleep.slept == [pytest.approx(waited)]


def test_a_failed_llm_call_gives_its_whole_reservation_back(openai_server) -> None:
    openai_server.script(status=400, message="bad request")
    limiter = MemoryLimiter(clock=FakeClock())
    outcome, _ = run(llm_spec(openai_server, max_tokens=50), {"user_input": "hi"}, limiter=limiter)
    assert outcome.status == "failed"
    assert limiter.available("agentflow:rl::lane", tpm(100)) == pytest.approx(100)


def test_a_reservation_larger_than_the_bucket_never_calls_the_provider(openai_server) -> None:
    limiter = MemoryLimiter(clock=FakeClock())
    outcome, _ = run(llm_spec(openai_server, max_tokens=500), {"user_input": "hi"}, limiter=limiter)
    assert outcome.error is not None and outcome.error["code"] == "rate_limited"
    assert "can never pass 501 tokens" in outcome.error["message"]
    assert openai_server.requests == []


def test_a_redis_that_does_not_answer_is_asked_again_then_refused_naming_the_queue() -> None:
    """A real RedisLimiter on a port nothing listens on: the take is tried again for as long as
    the run may wait, then refused with rate_limited naming the queue and the cause (it was an
    internal_error that no retry could help)."""
    limiter, sleep = RedisLimiter("redis://127.0.0.1:1/0"), Sleeper()
    queue = QueueLimits("lane", (rpm(2),))
    call = take(
        limiter,
        sleep,
        key=KEY,
        queue_id="lane",
        demand=[(queue.limits[0], 1.0)],
        max_wait=3.0,
        node_id="w",
    )
    with pytest.raises(RateLimited) as caught:
        asyncio.run(call)
    assert caught.value.code == "rate_limited" and caught.value.node_id == "w"
    assert "Queue 'lane' could not be checked" in caught.value.message
    assert "Redis" in caught.value.message
    assert len(sleep.slept) >= 3 and sum(sleep.slept) <= 3.0  # asked again, within the bound
