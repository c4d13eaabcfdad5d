"""AgentFlow's Prometheus metrics, served at `/metrics` (agentflow_site.observability.scrape).

Every name, its labels and where it is recorded (`_total` is added to counters when served):

HTTP (agentflow_site.observability.middleware, every request of a web process)
- agentflow_http_requests_total{route, method, status}: `route` is the URL pattern that matched
  (`/api/v1/executions/<exec_id:execution_id>`), never the raw path; `(unmatched)` for a 404.
- agentflow_http_request_duration_seconds{route, method}: histogram.
- agentflow_http_errors_total{problem, status}: problem+json answers by problem type
  (`not_found`, `invalid_workflow`, `throttled`, …: the type URI's last part).

Executions (executions.services and executions.worker)
- agentflow_executions_started_total{tenant, workflow, mode}: runs accepted (sync or async).
- agentflow_executions_ended_total{tenant, workflow, mode, status}: runs ended, by final status
  (succeeded, failed, timed_out, cancelled).
- agentflow_execution_duration_seconds{mode, status}: histogram of a run's execution time.
- agentflow_execution_tokens_total{tenant, workflow}, agentflow_execution_cost_usd_total{tenant,
  workflow}: what ended runs used.
- agentflow_executions_queued, agentflow_executions_running, agentflow_executions_stale (running
  with a stale heartbeat: their worker is gone), agentflow_queue_oldest_age_seconds (the oldest
  queued run's wait): read from the database at each scrape, so the same whichever process
  answers.

Nodes (executions.recording.TraceWriter, which sees every node attempt of sync and async runs)
- agentflow_node_runs_total{node_type, status}: node attempts ended (succeeded/failed/…).
- agentflow_node_errors_total{node_type, code}: failed attempts by error code.
- agentflow_node_duration_seconds{node_type}: histogram.

Providers, queues, budgets (runtime.metrics)
- agentflow_provider_calls_total{provider, model, outcome}, agentflow_provider_tokens_total
  {provider, model, direction=in|out}, agentflow_provider_cost_usd_total{provider, model},
  agentflow_provider_call_duration_seconds{provider}.
- agentflow_ratelimit_waits_total{queue}, agentflow_ratelimit_wait_seconds_total{queue},
  agentflow_ratelimit_refusals_total{queue}; agentflow_budget_refusals_total{limit}.

Workers (from the database at each scrape)
- agentflow_workers_alive, agentflow_worker_capacity, agentflow_worker_runs (runs held by live
  workers), agentflow_worker_heartbeat_age_seconds{worker}.
- agentflow_build_info{version}, agentflow_metrics_database_up (0: the database-read gauges
  above are missing from this scrape).

`tenant` is the tenant's slug; `workflow` a stored workflow's name, `(inline)` for a spec posted
to /workflows/execute; past AGENTFLOW_METRICS_MAX_WORKFLOWS distinct (tenant, workflow) pairs in
one process, `(other)`. No execution, node or key id is ever a label.
"""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from runtime import metrics as runtime_metrics
from runtime.events import NodeFinished
from runtime.metrics import DURATION_BUCKETS, OTHER, Bounded

INLINE = "(inline)"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

HTTP_REQUESTS = Counter(
    "agentflow_http_requests",
    "HTTP requests answered, by URL pattern, method and status code.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "agentflow_http_request_duration_seconds",
    "Seconds from a request's arrival in Django to its answer, by URL pattern and method.",
    ["route", "method"],
    buckets=HTTP_BUCKETS,
)
HTTP_ERRORS = Counter(
    "agentflow_http_errors",
    "problem+json answers, by problem type and status code.",
    ["problem", "status"],
)
RUNS_STARTED = Counter(
    "agentflow_executions_started",
    "Executions accepted, by tenant, workflow and mode (sync/async).",
    ["tenant", "workflow", "mode"],
)
RUNS_ENDED = Counter(
    "agentflow_executions_ended",
    "Executions ended, by tenant, workflow, mode and final status.",
    ["tenant", "workflow", "mode", "status"],
)
RUN_SECONDS = Histogram(
    "agentflow_execution_duration_seconds",
    "Execution time of ended runs, by mode and final status.",
    ["mode", "status"],
    buckets=RUN_BUCKETS,
)
RUN_TOKENS = Counter(
    "agentflow_execution_tokens",
    "Tokens ended runs used, by tenant and workflow.",
    ["tenant", "workflow"],
)
RUN_COST = Counter(
    "agentflow_execution_cost_usd",
    "What ended runs cost (USD), by tenant and workflow.",
    ["tenant", "workflow"],
)
NODE_RUNS = Counter(
    "agentflow_node_runs",
    "Node attempts ended, by node type and status.",
    ["node_type", "status"],
)
NODE_ERRORS = Counter(
    "agentflow_node_errors",
    "Failed node attempts, by node type and error code.",
    ["node_type", "code"],
)
NODE_SECONDS = Histogram(
    "agentflow_node_duration_seconds",
    "Seconds node attempts took, by node type.",
    ["node_type"],
    buckets=DURATION_BUCKETS,
)

_pairs = Bounded()


def configure() -> None:
    """At start: multiprocess mode, the on/off switch and the label cap, from the settings."""
    from agentflow_site.observability import multiprocess

    runtime_metrics.enabled = settings.AGENTFLOW_METRICS
    _pairs.cap = settings.AGENTFLOW_METRICS_MAX_WORKFLOWS
    if settings.AGENTFLOW_METRICS:
        multiprocess.install()


def enabled() -> bool:
    return runtime_metrics.enabled


# --- recording ---------------------------------------------------------------------------------


def http_answered(route: str, method: str, status: int, seconds: float, problem: str) -> None:
    if not enabled():
        return
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_SECONDS.labels(route, method).observe(seconds)
    if problem:
        HTTP_ERRORS.labels(problem, str(status)).inc()


def run_labels(execution: Any) -> tuple[str, str]:
    """(tenant, workflow) of an Execution, bounded."""
    workflow = execution.workflow_name if execution.workflow_id else INLINE
    return _bounded(execution.tenant.slug, workflow)


def _bounded(tenant: str, workflow: str) -> tuple[str, str]:
    """Tenants are the operator's (few); workflows the tenants' (capped)."""
    workflow = workflow[:100]
    return tenant, workflow if _pairs(f"{tenant}\x00{workflow}") != OTHER else OTHER


def execution_started(execution: Any) -> None:
    """A run was accepted: counted once its row is committed."""
    if enabled():
        labels = (*run_labels(execution), execution.mode)
        transaction.on_commit(RUNS_STARTED.labels(*labels).inc)


def execution_ended(
    execution: Any, status: str, final_state: dict[str, Any] | None, seconds: float
) -> None:
    """A run ended (its end written by this process): counted once that is committed."""
    if not enabled():
        return
    tenant, workflow = run_labels(execution)
    state = final_state or {}
    tokens, cost = int(state.get("tokens_used") or 0), float(state.get("cost") or 0)

    def count() -> None:
        RUNS_ENDED.labels(tenant, workflow, execution.mode, status).inc()
        RUN_SECONDS.labels(execution.mode, status).observe(seconds or 0)
        if tokens:
            RUN_TOKENS.labels(tenant, workflow).inc(tokens)
        if cost:
            RUN_COST.labels(tenant, workflow).inc(cost)

    transaction.on_commit(count)


def node_finished(event: NodeFinished) -> None:
    if not enabled():
        return
    NODE_RUNS.labels(event.node_type, event.status).inc()
    NODE_SECONDS.labels(event.node_type).observe(event.duration)
    if event.status not in ("succeeded", "waiting"):  # waiting: on a person, not an error
        code = str((event.error or {}).get("code") or event.status)
        NODE_ERRORS.labels(event.node_type, code).inc()


# --- read from the database at each scrape ----------------------------------------------------


class DatabaseCollector:
    """Gauges that are facts of the database, not of one process: runs queued and running,
    the oldest queued run's age, live workers."""

    def collect(self) -> Iterator[Metric]:
        yield _gauge("agentflow_build_info", "AgentFlow's version.", 1, version=_version())
        try:
            gauges = [*_run_gauges(), *_worker_gauges()]
        except Exception:  # a scrape still answers with what each process recorded
            from django.db import connection

            connection.close()
            yield _gauge("agentflow_metrics_database_up", _UP_HELP, 0)
            return
        yield _gauge("agentflow_metrics_database_up", _UP_HELP, 1)
        yield from gauges


_UP_HELP = "1 when this scrape could read the database gauges (runs queued, running; workers)."


def _version() -> str:
    return str(settings.AGENTFLOW_VERSION)


def _gauge(name: str, documentation: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _run_gauges() -> list[GaugeMetricFamily]:
    from django.db.models import Count, Min, Q
    from django.utils import timezone

    from executions.models import Execution, Status
    from executions.services import heartbeat_stale

    now = timezone.now()
    stale = Q(status=Status.RUNNING, heartbeat_at__lt=now - heartbeat_stale())
    found = Execution.objects.filter(status__in=(Status.QUEUED, Status.RUNNING)).aggregate(
        queued=Count("pk", filter=Q(status=Status.QUEUED)),
        running=Count("pk", filter=Q(status=Status.RUNNING)),
        stale=Count("pk", filter=stale),
        oldest=Min("created_at", filter=Q(status=Status.QUEUED)),
    )
    oldest: datetime | None = found["oldest"]
    return [
        _gauge("agentflow_executions_queued", "Runs waiting for a worker now.", found["queued"]),
        _gauge("agentflow_executions_running", "Runs running now.", found["running"]),
        _gauge(
            "agentflow_executions_stale",
            "Running runs whose heartbeat went stale (their worker is gone) now.",
            found["stale"],
        ),
        _gauge(
            "agentflow_queue_oldest_age_seconds",
            "How long the oldest queued run has waited (0: none queued).",
            (now - oldest).total_seconds() if oldest else 0.0,
        ),
    ]


def _worker_gauges() -> list[GaugeMetricFamily]:
    from django.utils import timezone

    from executions.models import Worker
    from executions.services import heartbeat_stale

    now = timezone.now()
    rows = list(Worker.objects.values_list("name", "beat_at", "capacity", "running"))
    alive = [row for row in rows if now - row[1] < heartbeat_stale()]
    ages = GaugeMetricFamily(
        "agentflow_worker_heartbeat_age_seconds",
        "Seconds since each registered run worker (host:pid) last beat.",
        labels=["worker"],
    )
    for name, beat_at, _, _ in rows:
        ages.add_metric([name], (now - beat_at).total_seconds())
    return [
        _gauge("agentflow_workers_alive", "Run workers beating now.", len(alive)),
        _gauge(
            "agentflow_worker_capacity",
            "Runs the live workers may drive at once.",
            sum(row[2] for row in alive),
        ),
        _gauge(
            "agentflow_worker_runs", "Runs the live workers drive now.", sum(r[3] for r in alive)
        ),
        ages,
    ]
