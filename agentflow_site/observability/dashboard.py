"""The health dashboard's numbers, computed from the stored metric samples (`MetricSample`).

A window (the last hour, the last day) is cut into bins. For each host, the sample at or just
before each bin's edges is read (a few dozen rows, whatever the number of samples between), and
the difference of their counters (kept going up across restarts by the sampler) is what the bin
saw: requests, server errors, the latency histogram's buckets, runs ended, tokens and cost. Rates
divide by the time between the two samples; hosts are summed. Gauges (runs queued and running,
workers, the database's and Redis's latency) are read from the newest sample in each bin.
"""

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from agentflow_site.models import MetricSample
from agentflow_site.observability import sampler


@dataclass(frozen=True)
class Window:
    name: str
    label: str
    seconds: int
    bin_seconds: int

    @property
    def bins(self) -> int:
        return self.seconds // self.bin_seconds


WINDOWS = {
    "hour": Window("hour", "Last hour", 3600, 60),
    "day": Window("day", "Last day", 86400, 900),
}
STATUSES = ("succeeded", "failed", "timed_out", "cancelled")
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
GAUGE_SERIES = ("running", "queued", "workers", "db_ms", "redis_ms")


@dataclass(frozen=True)
class _Span:
    """What one host's counters did between two of its samples."""

    counts: dict[str, float]
    seconds: float


# --- reading the samples -----------------------------------------------------------------------


def _edges(window: Window, now: datetime) -> list[datetime]:
    step = timedelta(seconds=window.bin_seconds)
    return [now - step * (window.bins - i) for i in range(window.bins + 1)]


def _picks(edges: Sequence[datetime]) -> dict[str, list[tuple[datetime, int]]]:
    """Per host, the (taken_at, id) of the sample at or before each edge (the host's first one
    when it has none that old)."""
    lookback = edges[0] - (edges[1] - edges[0]) - timedelta(seconds=4 * sampler.interval())
    rows = (
        MetricSample.objects.filter(taken_at__gte=lookback, taken_at__lte=edges[-1])
        .order_by("taken_at")
        .values_list("host", "taken_at", "pk")
    )
    by_host: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for host, taken_at, pk in rows:
        if taken_at is not None:  # the filter says so; the type does not
            by_host[host].append((taken_at, pk))
    return {host: _at_edges(found, edges) for host, found in by_host.items()}


def _at_edges(
    found: list[tuple[datetime, int]], edges: Sequence[datetime]
) -> list[tuple[datetime, int]]:
    times = [taken_at for taken_at, _ in found]
    return [found[max(0, bisect.bisect_right(times, edge) - 1)] for edge in edges]


def _load(picks: Mapping[str, list[tuple[datetime, int]]]) -> dict[int, dict[str, Any]]:
    wanted = {pk for chosen in picks.values() for _, pk in chosen}
    return dict(MetricSample.objects.filter(pk__in=wanted).values_list("pk", "data"))


def _totals(data: Mapping[str, Any]) -> dict[str, float]:
    counters, offsets = data.get("c", {}), data.get("o", {})
    return {key: counters.get(key, 0.0) + offsets.get(key, 0.0) for key in {*counters, *offsets}}


def _span(start: tuple[datetime, int], end: tuple[datetime, int], data: Mapping) -> _Span:
    before, after = _totals(data[start[1]]), _totals(data[end[1]])
    counts = {key: max(0.0, value - before.get(key, 0.0)) for key, value in after.items()}
    return _Span(counts, (end[0] - start[0]).total_seconds())


# --- what a span says --------------------------------------------------------------------------


def _sum(spans: Iterable[_Span]) -> dict[str, float]:
    summed: dict[str, float] = defaultdict(float)
    for span in spans:
        for key, value in span.counts.items():
            summed[key] += value
    return summed


def _rate(spans: Sequence[_Span], key: str) -> float | None:
    """Per second, summed over the hosts; None when no host has two samples here."""
    timed = [span for span in spans if span.seconds > 0]
    if not timed:
        return None
    return sum(span.counts.get(key, 0.0) / span.seconds for span in timed)


def quantile(q: float, buckets: Mapping[str, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative `le` buckets (seconds); None if empty."""
    ordered = sorted((float(le), count) for le, count in buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if le == float("inf"):
                return lower  # the highest finite bound, as Prometheus answers
            return lower + (le - lower) * (rank - below) / (count - below or 1)
        lower, below = le, count
    return lower


def _latency_ms(counts: Mapping[str, float]) -> dict[str, float | None]:
    buckets = {key.removeprefix("latency|"): v for key, v in counts.items() if "latency|" in key}
    found = {name: quantile(q, buckets) for name, q in QUANTILES}
    return {
        name: None if value is None else round(value * 1000, 1) for name, value in found.items()
    }


def _error_rate(counts: Mapping[str, float]) -> float | None:
    """Server errors (5xx) in percent of the requests; None with no request."""
    requests = counts.get("http", 0.0)
    return round(100 * counts.get("http|5xx", 0.0) / requests, 2) if requests else None


def _tenants(counts: Mapping[str, float]) -> list[dict[str, Any]]:
    names = {key.split("|", 1)[1] for key in counts if key.startswith(("tokens|", "cost|"))}
    rows = [
        {
            "tenant": name,
            "tokens": int(counts.get(f"tokens|{name}", 0)),
            "cost_usd": round(counts.get(f"cost|{name}", 0.0), 6),
        }
        for name in names
    ]
    rows = [row for row in rows if row["tokens"] or row["cost_usd"]]
    return sorted(rows, key=lambda row: (-row["cost_usd"], -row["tokens"], row["tenant"]))


def summary(spans: Sequence[_Span]) -> dict[str, Any]:
    """The window's totals (or one bin's): traffic, errors, latency, runs, tokens and cost."""
    counts = _sum(spans)
    rate = _rate(spans, "http")
    return {
        "requests": int(counts.get("http", 0)),
        "request_rate": None if rate is None else round(rate, 3),
        "server_errors": int(counts.get("http|5xx", 0)),
        "client_errors": int(counts.get("http|4xx", 0)),
        "error_rate": _error_rate(counts),
        "latency_ms": _latency_ms(counts),
        "executions": {
            "started": int(counts.get("started", 0)),
            **{status: int(counts.get(f"ended|{status}", 0)) for status in STATUSES},
        },
        "tenants": _tenants(counts),
    }


# --- the dashboard -----------------------------------------------------------------------------


def dashboard_data(window: Window, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the page shows for `window`, as JSON-ready values."""
    now = now or timezone.now()
    edges = _edges(window, now)
    picks = _picks(edges)
    data = _load(picks)
    bins = [
        [_span(chosen[i], chosen[i + 1], data) for chosen in picks.values()]
        for i in range(window.bins)
    ]
    whole = [_span(chosen[0], chosen[-1], data) for chosen in picks.values()]
    return {
        "window": window.name,
        "bin_seconds": window.bin_seconds,
        "generated_at": now.isoformat(),
        "hosts": sorted(picks),
        "now": _latest(now),
        "totals": summary(whole),
        "series": _series(edges, bins, picks, data),
    }


def _series(
    edges: Sequence[datetime],
    bins: Sequence[Sequence[_Span]],
    picks: Mapping[str, list[tuple[datetime, int]]],
    data: Mapping[int, dict[str, Any]],
) -> dict[str, list[Any]]:
    series: dict[str, list[Any]] = defaultdict(list)
    for i, spans in enumerate(bins):
        series["t"].append(edges[i + 1].isoformat())
        sampled = any(span.seconds > 0 for span in spans)
        bin_summary = summary(spans)
        series["request_rate"].append(bin_summary["request_rate"])
        series["error_rate"].append(bin_summary["error_rate"])
        for name, value in bin_summary["latency_ms"].items():
            series[f"{name}_ms"].append(value)
        for status in ("started", *STATUSES):
            series[status].append(bin_summary["executions"][status] if sampled else None)
        gauges = _gauges_in(edges[i], edges[i + 1], picks, data, i + 1)
        for name in GAUGE_SERIES:
            series[name].append(gauges.get(name))
    return dict(series)


def _gauges_in(
    start: datetime,
    end: datetime,
    picks: Mapping[str, list[tuple[datetime, int]]],
    data: Mapping[int, dict[str, Any]],
    edge: int,
) -> dict[str, Any]:
    """The gauges of the newest sample taken in (start, end], of any host ({} when none)."""
    inside = [chosen[edge] for chosen in picks.values() if start < chosen[edge][0] <= end]
    if not inside:
        return {}
    gauges: dict[str, Any] = data[max(inside)[1]].get("g", {})
    return gauges


def _latest(now: datetime) -> dict[str, Any]:
    """The newest sample's gauges: what is running, queued and up now, and how old that is."""
    row = (
        MetricSample.objects.filter(taken_at__isnull=False)
        .order_by("-taken_at")
        .values_list("taken_at", "data")
        .first()
    )
    if row is None:
        return {"sampled_at": None, "age_seconds": None}
    taken_at, data = row
    assert taken_at is not None  # filtered
    gauges = data.get("g", {})
    return {
        "sampled_at": taken_at.isoformat(),
        "age_seconds": round((now - taken_at).total_seconds(), 1),
        **{name: gauges.get(name) for name in sampler.GAUGES.values()},
        "database": _dependency(gauges, "db"),
        "redis": _dependency(gauges, "redis"),
    }


def _dependency(gauges: Mapping[str, Any], short: str) -> dict[str, Any]:
    up = gauges.get(f"{short}_up")
    status = "not configured" if up is None else "ok" if up else "down"
    return {"status": status, "latency_ms": gauges.get(f"{short}_ms")}
