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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from runtime import metrics
from runtime.budget import UNLIMITED, Budget
from runtime.credentials import SourceCredentials
from runtime.egress import EgressPolicy, EgressRefused, check_url
from runtime.egress.guard import PROVIDER_HINT
from runtime.errors import InvalidResult, NodeError
from runtime.events import NullObserver, RunObserver
from runtime.grants import Grants
from runtime.limits import DEFAULT_LIMITS, RunLimits, check_state, json_size, update_size
from runtime.loop import on_runtime_loop
from runtime.pricing import DEFAULT_PRICE_TABLE, PriceTable
from runtime.providers.base import EnvLookup
from runtime.providers.shared import AdapterKey, SharedAdapters, adapter_key, shared_adapters
from runtime.ratelimit import Limiter, default_limiter
from runtime.redaction import Redactor
from runtime.replay import NoRecordings, Recordings
from runtime.source_configs import SOURCE_CONFIGS
from runtime.spec import SourceSpec

ImageStore = Callable[[bytes, str], Awaitable[str]]
"""Store image bytes (with their MIME type) and return the URL the tenant reads them at."""
AggregationFunction = Callable[[Mapping[str, Any]], Any]
ProviderFactory = Callable[..., Any]
"""Called with a source's validated config and an EnvLookup; for EGRESS_KINDS also `egress=`."""


PROVIDER_URL_FIELDS = ("base_url", "endpoint")
PROVIDER_KINDS = frozenset({"openai", "openai_image", "azure_openai", "anthropic", "google"})
"""Kinds whose SDK connects by itself to the source's URL."""
EGRESS_KINDS = PROVIDER_KINDS | {"http"}
"""Kinds whose factory takes `egress=` (runtime.egress.trust.EgressPolicy): what they may reach."""
SHARED_KINDS = PROVIDER_KINDS
"""Kinds whose adapters hold an SDK client worth keeping between runs on the runtime loop
(an http source opens a client per request; database pools are kept by runtime.databases)."""


class MaxStepsExceeded(NodeError):
    code = "max_steps"


class RunStopped(Exception):
    """The run may start no more nodes (`RunContext.go_on`): it ends `cancelled`. Not a
    NodeError: no retry or `on_error: continue` goes on past it."""


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
    """Where credentials are read, by variable name, at call time (through `credentials`)."""
    grants: Grants | None = None
    """Where the tenant's variables may be sent, checked as each is read. None: unchecked (the
    operator's CLI, tests)."""
    redactor: Redactor = field(default_factory=Redactor)
    """Credential values this run keeps out of its state, trace, events and errors."""
    observer: RunObserver = field(default_factory=NullObserver)
    prices: PriceTable = DEFAULT_PRICE_TABLE
    store_image: ImageStore | None = None
    """None: image bytes are returned as a data: URL (CLI and tests)."""
    providers: Mapping[str, ProviderFactory] = field(default_factory=_default_providers)
    aggregations: Mapping[str, AggregationFunction] = field(default_factory=_default_aggregations)
    base_urls: Mapping[str, str] = field(default_factory=dict)
    """Source kind → base URL used when a source names none (an operator's gateway or proxy)."""
    trusted_hosts: frozenset[str] = frozenset()
    """Private or loopback hosts (`host`, `host:port`, IPs, CIDRs; runtime.egress.trust) this
    tenant's sources, http and provider alike, may reach: the operator's choice
    (AGENTFLOW_TRUSTED_HOSTS and the tenant's own list), which a source's allowed_hosts narrows."""
    trusted_provider_hosts: frozenset[str] = frozenset()
    """Hosts only a tenant's provider `base_url`/`endpoint` may also reach (an in-house vLLM,
    say): AGENTFLOW_TRUSTED_PROVIDER_HOSTS; the operator's `base_urls` are trusted too."""
    max_steps: int = 100
    """Node executions allowed in this run (retries of one node count once)."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = _utcnow
    tenant: str = ""
    """Whose queues' buckets this run takes from (`agentflow:rl:<tenant>:<queue id>:…`)."""
    limiter: Limiter = field(default_factory=default_limiter)
    """The queues' token buckets: Redis when REDIS_URL is set, else this process's memory."""
    budget: Budget = UNLIMITED
    """The tenant's daily budget: each provider call reserves from it before it is made and
    settles after (runtime.budget.spending)."""
    max_rate_wait: float = 30.0
    """The longest a node waits for a queue's bucket before failing with `rate_limited`."""
    recordings: Recordings = field(default_factory=NoRecordings)
    """Where each provider call's answer is kept, and where a replay finds the answers of the
    run it replays (runtime.replay); by default none."""
    go_on: Callable[[], Awaitable[None]] | None = None
    """Awaited before each node attempt starts: raises RunStopped when the run may start no
    more nodes (a cancel was accepted before it asked, or the run is no longer its caller's).
    None: nodes start unasked (the CLI, tests)."""
    limits: RunLimits = DEFAULT_LIMITS
    """The operator's caps on the state's size, one result's, the final state's, and the
    nodes running at once."""
    initial: Mapping[str, Any] = field(default_factory=dict)
    """The caller's initial state, as given (set by the runner; the input node checks it)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """What names this run in its log lines and its trace span (execution_id, workflow_id…)."""
    trace_parent: str = ""
    """W3C `traceparent[ tracestate]` of the span this run continues (the request that queued
    it); empty: the current span, if any (runtime.telemetry)."""
    steps: int = 0
    state_bytes: int = 0
    """Bytes written to the state so far (the initial state and every node's update)."""
    rate_waits: dict[str, float] = field(default_factory=dict, repr=False)
    """Seconds each node's queue gate waited before it ran; the node's trace takes them."""
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    """What each running node attempt was given (`note_input`); its trace takes it."""
    input_chars: int = 0
    """Characters of node inputs this run's trace kept so far (limits.max_recorded_input_chars)."""
    _adapters: dict[str, Any] = field(default_factory=dict, repr=False)
    _owned: list[Any] = field(default_factory=list, repr=False)
    """Adapters this run built and closes at its end."""
    _leases: list[AdapterKey] = field(default_factory=list, repr=False)
    """Keys of the shared adapters this run uses (runtime loop only)."""
    _shared: SharedAdapters | None = field(default=None, repr=False)
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)

    def node_slots(self) -> asyncio.Semaphore:
        """The run's `max_parallel_nodes` slots; a node holds one while it runs.

        Not LangGraph's `max_concurrency`: that bounds the branches too (langgraph 1.2), but a
        failing branch then leaves every waiting one as a never-awaited coroutine (a
        RuntimeWarning each), while here the waiting tasks are cancelled like any other.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.max_parallel_nodes)
        return self._slots

    def note_input(self, node_id: str, given: Any) -> None:
        """Keep what `node_id`'s current attempt was given, for its trace (redacted there)."""
        self.inputs[node_id] = given

    def count_step(self, node_id: str) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise MaxStepsExceeded(
                f"The run reached max_steps ({self.max_steps}) at node '{node_id}'; raise "
                "limits.max_steps or bound the loop that keeps running.",
                node_id=node_id,
            )

    def count_initial(self, state: Mapping[str, Any]) -> None:
        """Start the state's byte count from the state the run starts (or resumes) from."""
        try:
            self.state_bytes = json_size(state)
        except (ValueError, TypeError, RecursionError) as exc:
            raise InvalidResult(f"The initial state is not JSON: {exc}") from None
        check_state(self.state_bytes, self.limits, None)

    def count_update(self, node_id: str, update: Mapping[str, Any]) -> None:
        """Check a node's update against the limits, then count it as written.

        Raises:
            ResultTooLarge, StateTooLarge, InvalidResult: the update breaks a limit.
        """
        size = update_size(node_id, update, self.limits)
        check_state(self.state_bytes + size, self.limits, node_id)
        self.state_bytes += size

    async def aclose(self) -> None:
        """Close what this run opened on its event loop: SDK clients and database pools. Shared
        adapters (runtime loop) are handed back open, for the next run."""
        leases, self._leases = self._leases, []
        if self._shared is not None:
            self._shared.release(leases)
        owned, self._owned = self._owned, []
        self._adapters.clear()
        for adapter in owned:
            close = getattr(adapter, "aclose", None)
            if close is not None:
                await close()
        if self._shared is not None:
            await self._shared.trim()
        await self.limiter.aclose()
        await self.budget.aclose()
        pools = sys.modules.get("runtime.databases.pool")  # imported by any run that used one
        if pools is not None:
            await pools.close_pools()

    def source_config(self, source: SourceSpec) -> Any:
        """The source's validated config: the operator's base URL when it names none, else its
        own URL once checked."""
        config = SOURCE_CONFIGS[source.kind].model_validate(source.config)
        default_url = self.base_urls.get(source.kind)
        if default_url and getattr(config, "base_url", "") is None:
            return config.model_copy(update={"base_url": default_url})
        if source.kind in PROVIDER_KINDS:  # the http kind's door checks its URLs as it sends
            self.check_provider_url(source.kind, config)
        return config

    def check_provider_url(self, kind: str, config: Any) -> None:
        """Refuse early, before any lookup, a provider URL spelled as (or named like) an address
        the source may not reach. The addresses a name resolves to are checked by the SDK's
        transport (runtime.egress.transport) as it connects, and the connection is pinned."""
        for name in PROVIDER_URL_FIELDS:
            url = getattr(config, name, None)
            if not isinstance(url, str) or not url:
                continue
            try:
                check_url(url, self.egress_policy(kind, config))
            except EgressRefused as exc:
                raise EgressRefused(f"The source's {name} is refused. {exc.message}") from None

    def egress_policy(self, kind: str, config: Any) -> EgressPolicy:
        """Which non-public hosts a source may reach: what the operator trusts (for provider
        kinds also AGENTFLOW_TRUSTED_PROVIDER_HOSTS and its own base URLs), narrowed by an http
        source's allowed_hosts."""
        allowed = getattr(config, "allowed_hosts", None) if kind == "http" else None
        try:
            trusted = set(self.trusted_hosts)
            if kind in PROVIDER_KINDS:
                gateways = {_host_port(url) for url in self.base_urls.values()}
                trusted |= self.trusted_provider_hosts | gateways
                return replace(EgressPolicy.of(sorted(trusted)), hint=PROVIDER_HINT)
            return EgressPolicy.of(sorted(trusted), allowed)
        except ValueError as exc:
            raise EgressRefused(f"The operator's trusted hosts hold a bad entry: {exc}.") from None

    def _egress(self, kind: str, config: Any) -> dict[str, EgressPolicy]:
        return {"egress": self.egress_policy(kind, config)} if kind in EGRESS_KINDS else {}

    def adapter(self, source: SourceSpec) -> Any:
        """The provider adapter for a source: built once per run, or on the runtime loop leased
        from the adapters its runs share (SDK kinds)."""
        if source.id not in self._adapters:
            config = self.source_config(source)
            factory = self.providers.get(source.kind)
            if factory is None:
                raise NodeError(f"No adapter is installed for sources of kind '{source.kind}'.")
            if source.kind in SHARED_KINDS and on_runtime_loop():
                adapter = self._lease(source, factory, config)
            else:
                egress = self._egress(source.kind, config)
                adapter = factory(config, self.credentials(source), **egress)
                self._owned.append(adapter)
            self._adapters[source.id] = metrics.metered(adapter, source.kind, config, self.prices)
        return self._adapters[source.id]

    def credentials(self, source: SourceSpec) -> SourceCredentials:
        """Where the source's adapter reads its credentials: only what its grants bind to where
        it sends them, each value read added to the run's redactor."""
        return SourceCredentials(
            source.id, source.kind, source.config, self.env, self.grants, self.redactor
        )

    def _lease(self, source: SourceSpec, factory: ProviderFactory, config: Any) -> Any:
        kind = source.kind
        egress = self._egress(kind, config)
        key, credentials = adapter_key(
            self.tenant, kind, factory, config, self.credentials(source), egress.get("egress")
        )
        self._shared = self._shared or shared_adapters()
        adapter = self._shared.acquire(key, lambda: factory(config, credentials, **egress))
        self._leases.append(key)
        return adapter


def _host_port(url: str) -> str:
    """`host:port` of an operator's base URL, as a trusted-hosts entry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
