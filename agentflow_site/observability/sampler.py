"""Snapshots of the metrics for the health dashboard, kept in the database (`MetricSample`).

Every AGENTFLOW_HEALTH_SAMPLE_SECONDS, one process of each host reads what `/metrics` would
serve (the multiprocess files every AgentFlow process of the host writes, and the database
gauges), probes the database and Redis as `/health` does, and stores one compact row. The row
is claimed before it is taken (a conditional insert keyed by host and interval), so however many
processes try, one of them does the work and the others pay one query.

Counters go down when every process of a host restarts. The row stores, beside each counter's
value, the offset that keeps it going up (`o`, only for counters that were reset), so the
dashboard subtracts any two rows of a host without reading the ones between them.
"""

import contextlib
import math
import secrets
import socket
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import connections
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample

from agentflow_site import health
from agentflow_site.models import MetricSample
from agentflow_site.observability import metrics, multiprocess

logger = structlog.get_logger(__name__)

KEEP = timedelta(days=1, hours=2)
"""How long rows are kept: the dashboard's longest window, and a margin for its first bin."""
DASHBOARD_ROUTE = "/admin/agentflow_site/metricsample/"
"""The dashboard's own pages: their polling is not counted as traffic."""
GAUGES = {
    "agentflow_executions_queued": "queued",
    "agentflow_executions_running": "running",
    "agentflow_executions_stale": "stale",
    "agentflow_queue_oldest_age_seconds": "oldest_queued_s",
    "agentflow_workers_alive": "workers",
    "agentflow_worker_capacity": "capacity",
    "agentflow_worker_runs": "worker_runs",
}
_STATUS_UP = {health.OK: 1, health.DOWN: 0}


def interval() -> float:
    return float(settings.AGENTFLOW_HEALTH_SAMPLE_SECONDS)


def host_name() -> str:
    """What a row's counters belong to: the host whose processes share the metrics files."""
    return socket.gethostname()[:255]


def period_of(moment: datetime) -> datetime:
    seconds = interval()
    start = math.floor(moment.timestamp() / seconds) * seconds
    return datetime.fromtimestamp(start, tz=moment.tzinfo or timezone.get_current_timezone())


# --- taking a sample ---------------------------------------------------------------------------


def sample_if_due(*, now: datetime | None = None, host: str | None = None) -> MetricSample | None:
    """Take this host's sample for the current interval, unless a process already did."""
    now = now or timezone.now()
    host = host or host_name()
    period = period_of(now)
    claimed = _claim(host, period)
    if claimed is None:
        return None
    previous = (
        MetricSample.objects.filter(host=host, taken_at__isnull=False)
        .order_by("-taken_at")
        .values_list("data", flat=True)
        .first()
    )
    raw, gauges = read_metrics()
    claimed.data = {"c": raw, "o": offsets(previous, raw), "g": gauges}
    claimed.taken_at = now
    claimed.save(update_fields=["data", "taken_at"])
    MetricSample.objects.filter(period__lt=now - KEEP).delete()
    return claimed


def _claim(host: str, period: datetime) -> MetricSample | None:
    if MetricSample.objects.filter(host=host, period=period).exists():
        return None  # the usual case for all but one process: one indexed read
    token = secrets.token_hex(8)
    row = MetricSample(host=host, period=period, claim=token)
    MetricSample.objects.bulk_create([row], ignore_conflicts=True)
    return MetricSample.objects.filter(host=host, period=period, claim=token).first()


def offsets(previous: Mapping[str, Any] | None, raw: Mapping[str, float]) -> dict[str, float]:
    """What to add to each counter of `raw` so that none is below its total in `previous`: a
    counter lower than before was reset, and all of its new value is new (as Prometheus's
    `increase` reads it). Only the non-zero offsets are kept."""
    if not previous:
        return {}
    before, carried = previous.get("c", {}), previous.get("o", {})
    found: dict[str, float] = {}
    for key in {*before, *carried, *raw}:
        was, now = before.get(key, 0.0), raw.get(key, 0.0)
        total = was + carried.get(key, 0.0) + (now - was if now >= was else now)
        if abs(total - now) > 1e-9:
            found[key] = total - now
    return found


def read_metrics() -> tuple[dict[str, float], dict[str, float | None]]:
    """(counters, gauges) as `/metrics` serves them now, compacted for the dashboard."""
    counters: dict[str, float] = {}
    if metrics.enabled():
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiprocess.directory())
        for family in registry.collect():
            for sample in family.samples:
                _count(counters, sample)
    gauges: dict[str, float | None] = {}
    for family in metrics.DatabaseCollector().collect():
        for sample in family.samples:
            if sample.name in GAUGES:
                gauges[GAUGES[sample.name]] = sample.value
    gauges.update(_probes())
    return counters, gauges


def _count(into: dict[str, float], sample: Sample) -> None:
    """Add one served sample to the compact counters it feeds (summed over the other labels)."""
    name, labels = sample.name, sample.labels
    if name.startswith("agentflow_http_") and labels.get("route", "").startswith(DASHBOARD_ROUTE):
        return
    if name == "agentflow_http_requests_total":
        _add(into, "http", sample.value)
        _add(into, f"http|{labels['status'][:1]}xx", sample.value)
    elif name == "agentflow_http_request_duration_seconds_bucket":
        _add(into, f"latency|{labels['le']}", sample.value)
    elif name == "agentflow_http_request_duration_seconds_sum":
        _add(into, "latency_sum", sample.value)
    elif name == "agentflow_executions_started_total":
        _add(into, "started", sample.value)
    elif name == "agentflow_executions_ended_total":
        _add(into, f"ended|{labels['status']}", sample.value)
    elif name == "agentflow_execution_tokens_total":
        _add(into, f"tokens|{labels['tenant']}", sample.value)
    elif name == "agentflow_execution_cost_usd_total":
        _add(into, f"cost|{labels['tenant']}", sample.value)


def _add(into: dict[str, float], key: str, value: float) -> None:
    into[key] = into.get(key, 0.0) + value


def _probes() -> dict[str, float | None]:
    """The database and Redis, probed as /health does: up (1/0; None when not configured) and
    the latency of one round trip in milliseconds."""
    found = health.dependencies()
    gauges: dict[str, float | None] = {}
    for name, short in (("database", "db"), ("redis", "redis")):
        probe = found[name]
        gauges[f"{short}_up"] = _STATUS_UP.get(probe["status"])
        gauges[f"{short}_ms"] = probe.get("latency_ms") if probe["status"] == health.OK else None
    return gauges


# --- in the background -------------------------------------------------------------------------


def sample_quietly() -> None:
    """`sample_if_due` for a loop: a failure is logged, and this thread's connection closed."""
    try:
        sample_if_due()
    except Exception:
        logger.exception("health_sample_failed")
    finally:
        with contextlib.suppress(Exception):
            connections.close_all()


def sample_every_interval(stop: threading.Event) -> threading.Thread:
    """A daemon thread sampling at each interval until `stop` is set (the run worker's)."""

    def loop() -> None:
        while not stop.wait(_until_next(timezone.now())):
            sample_quietly()

    thread = threading.Thread(target=loop, name="health-sampler", daemon=True)
    thread.start()
    return thread


def _until_next(now: datetime) -> float:
    """Seconds to a moment just inside the next interval (a little after it starts)."""
    seconds = interval()
    return seconds - now.timestamp() % seconds + min(1.0, seconds / 10)
