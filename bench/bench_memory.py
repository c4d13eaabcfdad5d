"""Memory growth of one web process over 10,000 requests and one run worker over 1,000 runs,
with the operator's view switched on (metrics, tracing to an OTLP endpoint, Sentry): flat or not.

Run: `python bench/bench_memory.py [--quick] [--requests 10000] [--runs 1000] [--plain]
[--clients 8] [--slices 10] [--redis-db 13]`.

PostgreSQL + Redis with `DEBUG=false`, one uvicorn process (production flags) and one
`manage.py runworker` (concurrency 50), on a database `agentflow_bench_<hex>` of its own. Sentry
(SENTRY_DSN) and OpenTelemetry (OTEL_EXPORTER_OTLP_ENDPOINT) send to a sink on 127.0.0.1 that
answers 200 and counts what it got; metrics are on (`--plain`: all three off). The load is
bench_soak.py's: after a warm-up (500 requests, 50 runs), `--requests` requests (health, me, a
list, a detail, a sync execute every 10th) in `--slices` slices, then `--runs` async runs (half
5 llm calls to the fake provider, half a 3-node template spec), each phase's process's RSS
(VmRSS) read after every slice.

For each: RSS after the warm-up and at the end, growth per 1,000 (whole phase, and a
least-squares slope over its second half, where start-up and allocator high-water effects are
done). The verdict is "flat" when the second half grows by less than FLAT_MB_PER_1000 MB per
1,000 (1 KB a request or a run: a leak of that size is a gigabyte per million). Only what the
bench made is removed: its database and its Redis keys.
"""

import argparse
import contextlib
import gzip
import json
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _fake_llm import FakeLLM
from _stack import Stack, load_average, site
from bench_scaleout import render
from bench_soak import Soak, answers_line, series_table
from bench_workers import Client

FLAT_MB_PER_1000 = 1.0


class _Sink(BaseHTTPRequestHandler):
    counts: dict[str, int] = {}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        for kind in _kinds(self.path, self.headers.get("Content-Encoding"), body):
            self.counts[kind] = self.counts.get(kind, 0) + 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _kinds(path: str, encoding: str | None, body: bytes) -> list[str]:
    """ "otlp" for a batch of spans; "sentry <item type>" for each item of a Sentry envelope."""
    if "/envelope/" not in path:
        return ["otlp"]
    raw = gzip.decompress(body) if encoding == "gzip" else body
    lines = raw.split(b"\n")[1:]
    kinds = []
    for line in lines:
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict) and "type" in item:
                kinds.append(f"sentry {item['type']}")
    return kinds


def start_sink() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def observability(sink: ThreadingHTTPServer, plain: bool) -> dict[str, str]:
    if plain:
        return {"AGENTFLOW_METRICS": "false", "SENTRY_DSN": "", "OTEL_SDK_DISABLED": "true"}
    url = f"http://127.0.0.1:{sink.server_address[1]}"
    return {
        "AGENTFLOW_METRICS": "true",
        "SENTRY_DSN": f"http://public@127.0.0.1:{sink.server_address[1]}/1",
        "SENTRY_ENVIRONMENT": "bench",
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_SERVICE_NAME": "agentflow-bench",
    }


@dataclass
class Phase:
    process: str
    unit: str
    points: list[tuple[int, float]]
    """(requests or runs done, RSS MB) from the end of the warm-up on."""

    def growth_per_1000(self) -> float:
        (first_n, first), (last_n, last) = self.points[0], self.points[-1]
        return (last - first) / (last_n - first_n) * 1000

    def second_half_slope(self) -> float:
        half = self.points[len(self.points) // 2 :]
        xs, ys = [n for n, _ in half], [mb for _, mb in half]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
        return slope * 1000

    def row(self) -> list[str]:
        slope = self.second_half_slope()
        flat = slope < FLAT_MB_PER_1000
        verdict = "flat" if flat else f"GROWING (>= {FLAT_MB_PER_1000:g} MB per 1,000)"
        return [
            self.process,
            f"{self.points[-1][0]:,} {self.unit}",
            f"{self.points[0][1]:.1f}",
            f"{self.points[-1][1]:.1f}",
            f"{self.points[-1][1] - self.points[0][1]:+.1f}",
            f"{self.growth_per_1000():+.2f}",
            f"{slope:+.2f}",
            verdict,
        ]


def measure(args: argparse.Namespace, stack: Stack) -> tuple[Soak, list[Phase]]:
    client = Client(stack.url, stack.site.key, args.clients)
    try:
        state = Soak(stack, client, [])
        state.run(args.warm_runs, args.timeout)
        state.drive(args.warm_requests)
        state.requests = state.runs = 0
        state.answers.clear()
        state.run_checks.clear()
        state.started = time.monotonic()
        state.sample("after warm-up")
        web = Phase("web", "requests", [(0, state.samples[-1].rss["web"])])
        for i in range(1, args.slices + 1):
            state.drive(args.requests * i // args.slices - state.requests)
            state.sample(f"requests {i}/{args.slices}")
            web.points.append((state.requests, state.samples[-1].rss["web"]))
        worker = Phase("worker 1", "runs", [(0, state.samples[-1].rss["worker 1"])])
        for i in range(1, args.slices + 1):
            state.run(args.runs * i // args.slices - state.runs, args.timeout)
            state.sample(f"runs {i}/{args.slices}")
            worker.points.append((state.runs, state.samples[-1].rss["worker 1"]))
    finally:
        client.close()
    return state, [web, worker]


def growth_table(phases: list[Phase]) -> str:
    header = ["process", "over", "after warm-up MB", "end MB", "growth MB"]
    header += ["per 1,000 MB", "2nd half per 1,000 MB", "verdict"]
    return render(header, [phase.row() for phase in phases])


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 requests and 200 runs")
    parser.add_argument("--requests", type=int, help="default 10,000 (quick 2,000)")
    parser.add_argument("--runs", type=int, help="default 1,000 (quick 200)")
    parser.add_argument("--plain", action="store_true", help="metrics, tracing and Sentry off")
    parser.add_argument("--clients", type=int, default=8, help="connections sending requests")
    parser.add_argument("--slices", type=int, default=10, help="RSS readings per phase")
    parser.add_argument("--warm-requests", type=int, default=500)
    parser.add_argument("--warm-runs", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.05, help="the fake provider's answer time")
    parser.add_argument("--timeout", type=float, default=300, help="per slice of runs, seconds")
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()
    args.requests = args.requests or (2_000 if args.quick else 10_000)
    args.runs = args.runs or (200 if args.quick else 1_000)
    return args


def main() -> int:
    args = parse()
    report: dict[str, list[str]] = {}
    sink = start_sink()
    with FakeLLM(args.delay) as fake, site(args.redis_db, fake, report) as where:
        where.env.update(observability(sink, args.plain))
        stack = Stack(where)
        try:
            stack.start_web(1)
            stack.start_workers(1)
            load = load_average()
            state, phases = measure(args, stack)
        finally:
            stack.stop()
    on = "off (--plain)" if args.plain else "on (metrics, OTLP tracing, Sentry; sink on 127.0.0.1)"
    print(
        f"PostgreSQL + Redis (db {args.redis_db}), DEBUG=false; 1 uvicorn process, 1 runworker "
        f"(concurrency 50); observability {on}; load average at start {load}."
    )
    print(answers_line(state))
    checks = state.run_checks
    print(f"runs: {checks['succeeded']}/{args.runs} succeeded; sink got {dict(_Sink.counts)}")
    print()
    print(series_table(state))
    print()
    print(growth_table(phases))
    for line in report.get("removed", []):
        print(f"removed: {line}")
    sink.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
