"""The runtime's Prometheus metrics: provider calls, rate-limit waits and refusals, budget refusals.

Recorded where they happen (`ratelimit.take`, `DailyBudget.reserve`, the adapter `RunContext`
hands a node), into prometheus-client's default registry. The site serves them at `/metrics`
(agentflow_site.observability.metrics, which lists every AgentFlow metric); the site also puts
prometheus-client in multiprocess mode, so what a worker records is summed with the web
processes'. Without the site (the CLI) nothing reads them: recording costs a dict lookup.

Label values a tenant chooses (a queue id, a model name) are `bounded`: past a cap of distinct
values in one process, further ones are counted as `(other)`, so a spec cannot grow the series
without end.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram

from runtime.pricing import PriceTable

OTHER = "(other)"
MAX_LABEL_VALUES = 200
"""Distinct values one process records for a tenant-chosen label before using `OTHER`."""
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
"""Seconds: a node or a provider call takes from milliseconds (a transform) to minutes."""

enabled = True
"""Off: nothing is recorded (AGENTFLOW_METRICS=off, and the benchmark's 'off' side)."""

PROVIDER_CALLS = Counter(
    "agentflow_provider_calls",
    "Calls to an LLM, embedding or image provider, by source kind, model and outcome (ok/error).",
    ["provider", "model", "outcome"],
)
PROVIDER_TOKENS = Counter(
    "agentflow_provider_tokens",
    "Tokens providers reported, by source kind, model and direction (in: prompt, out: answer).",
    ["provider", "model", "direction"],
)
PROVIDER_COST = Counter(
    "agentflow_provider_cost_usd",
    "What provider calls cost at the operator's price table (USD).",
    ["provider", "model"],
)
PROVIDER_SECONDS = Histogram(
    "agentflow_provider_call_duration_seconds",
    "How long provider calls took, by source kind.",
    ["provider"],
    buckets=DURATION_BUCKETS,
)
RATE_WAITS = Counter(
    "agentflow_ratelimit_waits",
    "Takes from a queue's buckets that had to wait for a slot (backpressure), by queue id.",
    ["queue"],
)
RATE_WAIT_SECONDS = Counter(
    "agentflow_ratelimit_wait_seconds",
    "Seconds runs waited for a queue's buckets, by queue id.",
    ["queue"],
)
RATE_REFUSALS = Counter(
    "agentflow_ratelimit_refusals",
    "Takes refused (the node failed with rate_limited), by queue id.",
    ["queue"],
)
BUDGET_REFUSALS = Counter(
    "agentflow_budget_refusals",
    "Provider calls refused by a tenant's daily budget, by the limit reached (token/cost).",
    ["limit"],
)


class Bounded:
    """Label values up to a cap of distinct ones; any further value becomes `OTHER`."""

    def __init__(self, cap: int = MAX_LABEL_VALUES) -> None:
        self.cap = cap
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.cap:
            return OTHER
        self.seen.add(value)
        return value


queue_label = Bounded()
model_label = Bounded()


def rate_limit_waited(queue_id: str, seconds: float) -> None:
    if enabled and seconds > 0:
        queue = queue_label(queue_id)
        RATE_WAITS.labels(queue).inc()
        RATE_WAIT_SECONDS.labels(queue).inc(seconds)


def rate_limit_refused(queue_id: str) -> None:
    if enabled:
        RATE_REFUSALS.labels(queue_label(queue_id)).inc()


def budget_refused(limit: str) -> None:
    if enabled:
        BUDGET_REFUSALS.labels(limit).inc()


def provider_called(
    provider: str, model: str, usage: Any, prices: PriceTable, seconds: float
) -> None:
    """A call answered; `usage` is a runtime.providers.base.Usage."""
    if not enabled:
        return
    model = model_label(model or "unknown")
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    PROVIDER_CALLS.labels(provider, model, "ok").inc()
    PROVIDER_SECONDS.labels(provider).observe(seconds)
    if prompt:
        PROVIDER_TOKENS.labels(provider, model, "in").inc(prompt)
    if completion:
        PROVIDER_TOKENS.labels(provider, model, "out").inc(completion)
    cost = prices.cost(model, prompt, completion)
    if cost:
        PROVIDER_COST.labels(provider, model).inc(cost)


def provider_failed(provider: str, model: str, seconds: float) -> None:
    if enabled:
        PROVIDER_CALLS.labels(provider, model_label(model or "unknown"), "error").inc()
        PROVIDER_SECONDS.labels(provider).observe(seconds)


_CALLS = ("chat", "embed", "generate")


class MeteredAdapter:
    """A provider adapter whose chat, embed and generate calls are counted; everything else
    is the adapter's own."""

    def __init__(self, adapter: Any, provider: str, model: str, prices: PriceTable) -> None:
        self._adapter, self._provider, self._model, self._prices = adapter, provider, model, prices

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._adapter, name)
        return self._metered(found) if name in _CALLS else found

    def _metered(self, call: Any) -> Any:
        async def metered(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await call(*args, **kwargs)
            except BaseException:
                provider_failed(self._provider, self._model, time.perf_counter() - started)
                raise
            seconds = time.perf_counter() - started
            provider_called(self._provider, result.model, result.usage, self._prices, seconds)
            return result

        return metered


def metered(adapter: Any, provider: str, config: Any, prices: PriceTable) -> Any:
    """`adapter`, counted when it calls a model (an http or database source is left as is)."""
    if not any(hasattr(adapter, name) for name in _CALLS):
        return adapter
    model = getattr(config, "model_name", None) or getattr(config, "deployment", None) or ""
    return MeteredAdapter(adapter, provider, str(model), prices)
