"""What one run needs from its caller, handed to every node through LangGraph's run context.

A compiled graph is shared by every run of the same spec; everything that differs per run —
credentials, the observer, the clock, the step count — lives here.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runtime.budget import Budget
from runtime.egress_guard import EgressPolicy, check_url
from runtime.errors import NodeError
from runtime.events import NullObserver, RunObserver
from runtime.pricing import DEFAULT_PRICE_TABLE, PriceTable
from runtime.providers.base import EnvLookup
from runtime.ratelimit import Limiter, default_limiter
from runtime.source_configs import SOURCE_CONFIGS
from runtime.spec import SourceSpec

ImageStore = Callable[[bytes, str], Awaitable[str]]
"""Store image bytes (with their MIME type) and return the URL the tenant reads them at."""
AggregationFunction = Callable[[Mapping[str, Any]], Any]
ProviderFactory = Callable[[Any, EnvLookup], Any]


PROVIDER_URL_FIELDS = ("base_url", "endpoint")
PROVIDER_KINDS = frozenset({"openai", "openai_image", "azure_openai", "anthropic", "google"})
"""Kinds whose SDK connects by itself to the source's URL."""


class MaxStepsExceeded(NodeError):
    code = "max_steps"


def _default_providers() -> Mapping[str, ProviderFactory]:
    from runtime.providers import PROVIDERS

    return PROVIDERS


def _default_aggregations() -> Mapping[str, AggregationFunction]:
    from runtime.aggregations import AGGREGATIONS

    return AGGREGATIONS


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunContext:
    env: EnvLookup = os.environ.get
    """Where credentials are read, by variable name, at call time."""
    observer: RunObserver = field(default_factory=NullObserver)
    prices: PriceTable = DEFAULT_PRICE_TABLE
    store_image: ImageStore | None = None
    """None: image bytes are returned as a data: URL (CLI and tests)."""
    providers: Mapping[str, ProviderFactory] = field(default_factory=_default_providers)
    aggregations: Mapping[str, AggregationFunction] = field(default_factory=_default_aggregations)
    base_urls: Mapping[str, str] = field(default_factory=dict)
    """Source kind → base URL used when a source names none (an operator's gateway or proxy)."""
    trusted_provider_hosts: frozenset[str] = frozenset()
    """Hosts (names, IPs or CIDRs) a tenant's own provider `base_url`/`endpoint` may point at
    although they are private or loopback (an in-house vLLM, say); the operator's choice."""
    max_steps: int = 100
    """Node executions allowed in this run (retries of one node count once)."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = _utcnow
    tenant: str = ""
    """Whose queues' buckets this run takes from (`agentflow:rl:<tenant>:<queue id>:…`)."""
    limiter: Limiter = field(default_factory=default_limiter)
    """The queues' token buckets: Redis when REDIS_URL is set, else this process's memory."""
    budget: Budget = field(default_factory=Budget)
    """What the tenant may still spend today (checked before every provider call)."""
    max_rate_wait: float = 30.0
    """The longest a node waits for a queue's bucket before failing with `rate_limited`."""
    initial: Mapping[str, Any] = field(default_factory=dict)
    """The caller's initial state, as given (set by the runner; the input node checks it)."""
    steps: int = 0
    rate_waits: dict[str, float] = field(default_factory=dict, repr=False)
    """Seconds each node's queue gate waited before it ran; the node's trace takes them."""
    _adapters: dict[str, Any] = field(default_factory=dict, repr=False)

    def count_step(self, node_id: str) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise MaxStepsExceeded(
                f"The run reached max_steps ({self.max_steps}) at node '{node_id}'; raise "
                "limits.max_steps or bound the loop that keeps running.",
                node_id=node_id,
            )

    async def aclose(self) -> None:
        """Close what this run opened on its event loop: SDK clients and database pools."""
        for adapter in self._adapters.values():
            close = getattr(adapter, "aclose", None)
            if close is not None:
                await close()
        self._adapters.clear()
        await self.limiter.aclose()
        pools = sys.modules.get("runtime.databases.pgpool")
        if pools is not None:
            await pools.close_pools()

    def source_config(self, source: SourceSpec) -> Any:
        """The source's validated config: the operator's base URL when it names none, else its
        own URL once checked."""
        config = SOURCE_CONFIGS[source.kind].model_validate(source.config)
        default_url = self.base_urls.get(source.kind)
        if default_url and getattr(config, "base_url", "") is None:
            return config.model_copy(update={"base_url": default_url})
        if source.kind in PROVIDER_KINDS:  # the http kind has its own door (runtime/egress.py)
            self.check_provider_url(config)
        return config

    def check_provider_url(self, config: Any) -> None:
        """Refuse a tenant's provider URL that reaches a private, loopback, link-local or
        metadata address (the SDKs would connect to it with the tenant's prompts and the
        platform's network position), unless the operator trusts that host.

        The SDKs resolve the name again when they connect; the http node's egress door pins
        the address, provider clients do not (yet), so a rebinding name could slip past this.
        """
        for name in PROVIDER_URL_FIELDS:
            url = getattr(config, name, None)
            if isinstance(url, str) and url:
                check_url(url, EgressPolicy.from_allowed_hosts(self.trusted_provider_hosts))

    def adapter(self, source: SourceSpec) -> Any:
        """The provider adapter for a source, built once per run."""
        if source.id not in self._adapters:
            config = self.source_config(source)
            factory = self.providers.get(source.kind)
            if factory is None:
                raise NodeError(f"No adapter is installed for sources of kind '{source.kind}'.")
            self._adapters[source.id] = factory(config, self.env)
        return self._adapters[source.id]
