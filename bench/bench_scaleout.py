"""Scale-out: the same load on 1 web process + 1 worker (A) and 2 web processes + 2 workers (B).

Run: `python bench/bench_scaleout.py [--quick] [--seconds 10] [--clients 16] [--runs 200]
[--read-connections 16] [--delay 0.2] [--redis-db 12]`.

PostgreSQL + Redis with `DEBUG=false`, the production web command (`uvicorn
agentflow_site.asgi:application --http agentflow_site.serving:HTTPProtocol --no-access-log`;
B adds `--workers 2`: one supervisor and two children accepting on one socket) and `manage.py
runworker` processes (AGENTFLOW_WORKER_CONCURRENCY 50). Each configuration gets a fresh
database, so both read the same amount of data. For each:

- sync executes: a 5-node template chain (bench_runtime's `chain_spec(5)`), `--clients`
  connections posting `mode: sync` for `--seconds` (wrk): requests/s, p50, p95.
- async LLM-bound runs: `--runs` runs of 5 llm calls answered by the fake provider after
  `--delay` s, posted at once through the API: time until the last one ended (from the rows),
  runs/s, none lost, no call missing or repeated.
- reads: `GET /api/v1/executions?page_size=20` and `GET /api/v1/executions/{id}` (rotating over
  100 runs) at `--read-connections` connections for `--seconds` (wrk): requests/s, p50, p95.

Then the CPU each process used in each phase (from /proc), in cores: how much of the machine the
web processes, workers, PostgreSQL, wrk and this process (the async clients and the fake
provider) took. On a 2-core machine B cannot be more than ~2x A, and less when A already used
both cores (the database, wrk and the fake run on the same cores).

Only what the bench made is removed: its databases `agentflow_bench_<hex>` (one per
configuration), and Redis keys under each one's own cache prefix in database `--redis-db`.
"""

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _fake_llm import FakeLLM
from _stack import (
    CpuMeter,
    Load,
    Site,
    Stack,
    execution_rows,
    load_average,
    lua_headers,
    lua_post,
    lua_rotate,
    site,
    wait_runs,
    wrk,
)
from bench_runtime import chain_spec
from bench_workers import LLM_CHAIN, LLM_NODES, Client, _calls

EXECUTE = "/api/v1/workflows/execute"
LIST = "/api/v1/executions?page_size=20"


@dataclass
class Config:
    label: str
    web: int
    workers: int
    mode: str = "workers"
    """Several web processes as `uvicorn --workers N`, or "reuseport": N uvicorn processes."""

    @property
    def title(self) -> str:
        if self.web == 1:
            web = "1 uvicorn"
        elif self.mode == "workers":
            web = f"uvicorn --workers {self.web}"
        else:
            web = f"{self.web} uvicorn (SO_REUSEPORT)"
        return f"{self.label}: {web} + {self.workers} worker{'s' * (self.workers > 1)}"


CONFIGS = {
    "A": Config("A", 1, 1),
    "B": Config("B", 2, 2, "workers"),
    "B'": Config("B'", 2, 2, "reuseport"),
}


@dataclass
class Result:
    config: Config
    figures: dict[str, float] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    cpu: dict[str, CpuMeter] = field(default_factory=dict)
    load: tuple[str, str] = ("", "")


def _sync_script(key: str) -> str:
    body = {"workflow": chain_spec(5), "mode": "sync", "initial_state": {"user_input": "hi"}}
    return lua_headers(key) + lua_post(EXECUTE, json.dumps(body))


def _loaded(result: Result, name: str, load: Load) -> None:
    result.figures[f"{name} req/s"] = load.rps
    result.figures[f"{name} p50 ms"] = load.p50_ms
    result.figures[f"{name} p95 ms"] = load.p95_ms
    result.checks[f"{name}: requests / errors"] = f"{load.requests} / {load.bad}"


def phase_sync(stack: Stack, result: Result, args: argparse.Namespace) -> None:
    with CpuMeter(stack, stack.site.name) as meter:
        load = wrk(stack.url, _sync_script(stack.site.key), args.clients, args.seconds)
    result.cpu["sync"] = meter
    _loaded(result, "sync", load)


def phase_async(stack: Stack, result: Result, args: argparse.Namespace) -> None:
    fake = stack.site.fake
    fake.reset()
    client = Client(stack.url, stack.site.key, args.posters)
    try:
        with CpuMeter(stack, stack.site.name) as meter:
            runs = wait_runs(stack.site, client.start(LLM_CHAIN, args.runs), args.timeout)
    finally:
        client.close()
    result.cpu["async"] = meter
    missing, repeated, _ = _calls(fake, runs)
    result.figures["async all done s"] = runs.took
    result.figures["async runs/s"] = runs.succeeded / runs.took
    result.figures["async max in flight"] = runs.max_in_flight()
    result.checks["async: succeeded / calls missing / repeated"] = (
        f"{runs.succeeded}/{args.runs} / {missing} / {repeated}"
    )


def phase_reads(stack: Stack, result: Result, args: argparse.Namespace) -> None:
    key, connections = stack.site.key, args.read_connections
    with CpuMeter(stack, stack.site.name) as meter:
        load = wrk(stack.url + LIST, lua_headers(key), connections, args.seconds)
    result.cpu["list"] = meter
    _loaded(result, "list", load)
    ids = [row[0] for row in execution_rows(stack.site)]
    paths = [f"/api/v1/executions/{i}" for i in random.Random(1).sample(ids, min(100, len(ids)))]
    with CpuMeter(stack, stack.site.name) as meter:
        load = wrk(stack.url, lua_headers(key) + lua_rotate(paths), connections, args.seconds)
    result.cpu["detail"] = meter
    _loaded(result, "detail", load)


def warm_up(stack: Stack, args: argparse.Namespace) -> None:
    """Every web process and worker has served the kinds of requests measured."""
    key = stack.site.key
    wrk(stack.url, _sync_script(key), 4, args.warm_up)
    wrk(stack.url + LIST, lua_headers(key), 4, args.warm_up)
    client = Client(stack.url, key, 8)
    try:
        wait_runs(stack.site, client.start(LLM_CHAIN, 4 * len(stack.workers)), 60)
    finally:
        client.close()


def measure(
    config: Config, args: argparse.Namespace, fake: FakeLLM, report: dict[str, list[str]]
) -> Result:
    result = Result(config)
    with site(args.redis_db, fake, report) as where:
        stack = Stack(where)
        try:
            stack.start_web(config.web, config.mode)
            stack.start_workers(config.workers)
            warm_up(stack, args)
            before = load_average()
            phase_sync(stack, result, args)
            phase_async(stack, result, args)
            phase_reads(stack, result, args)
            result.load = (before, load_average())
            _not_succeeded(where, result)
        finally:
            stack.stop()
    return result


def _not_succeeded(where: Site, result: Result) -> None:
    rows = execution_rows(where)
    bad = sum(1 for row in rows if row[1] != "succeeded")
    result.checks["runs recorded / not succeeded (whole config)"] = f"{len(rows)} / {bad}"


# --- output ----------------------------------------------------------------------------------

ROWS = [
    ("sync req/s", "sync executes, 5-node chain: executes/s", "{:.1f}"),
    ("sync p50 ms", "sync executes: p50 ms", "{:.1f}"),
    ("sync p95 ms", "sync executes: p95 ms", "{:.1f}"),
    ("async all done s", "async LLM-bound runs: all done, s", "{:.2f}"),
    ("async runs/s", "async LLM-bound runs: runs/s", "{:.1f}"),
    ("async max in flight", "async LLM-bound runs: most in flight", "{:.0f}"),
    ("list req/s", "GET executions?page_size=20: req/s", "{:.0f}"),
    ("list p50 ms", "GET executions?page_size=20: p50 ms", "{:.1f}"),
    ("list p95 ms", "GET executions?page_size=20: p95 ms", "{:.1f}"),
    ("detail req/s", "GET executions/{id}: req/s", "{:.0f}"),
    ("detail p50 ms", "GET executions/{id}: p50 ms", "{:.1f}"),
    ("detail p95 ms", "GET executions/{id}: p95 ms", "{:.1f}"),
]


def render(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def figures_table(results: list[Result]) -> str:
    base, others = results[0], results[1:]
    rows = []
    for key, label, fmt in ROWS:
        values = [r.figures.get(key, float("nan")) for r in results]
        ratios = [f"{v / values[0]:.2f}" if values[0] else "-" for v in values[1:]]
        rows.append([label, *(fmt.format(v) for v in values), *ratios])
    for check in base.checks:
        cells = [r.checks.get(check, "-") for r in results]
        rows.append([check, *cells, *("" for _ in others)])
    ratios = [f"{r.config.label}/{base.config.label}" for r in others]
    return render(["", *(r.config.title for r in results), *ratios], rows)


def cpu_table(result: Result) -> str:
    phases = list(result.cpu)
    names: list[str] = []
    for meter in result.cpu.values():
        names += [n for n in meter.used if n not in names]
    rows = []
    for name in names:
        rows.append([name, *(_cores(result.cpu[p], name) for p in phases)])
    totals = [f"{sum(result.cpu[p].cores().values()):.2f}" for p in phases]
    rows.append([f"total (the machine has {os.cpu_count()} cores)", *totals])
    walls = [f"{result.cpu[p].wall:.1f}" for p in phases]
    rows.append(["wall seconds", *walls])
    return render([f"{result.config.title}: cores used", *phases], rows)


def _cores(meter: CpuMeter, name: str) -> str:
    used = meter.used.get(name)
    return "-" if used is None else f"{used / meter.wall:.2f}"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per load, 100 runs")
    parser.add_argument("--seconds", type=int, help="per wrk load (default 10; quick 3)")
    parser.add_argument("--clients", type=int, default=16, help="sync execute connections")
    parser.add_argument("--runs", type=int, help="async LLM-bound runs (default 200; quick 100)")
    parser.add_argument("--posters", type=int, default=16, help="threads posting async runs")
    parser.add_argument("--read-connections", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.2, help="the fake provider's answer time")
    parser.add_argument("--timeout", type=float, default=180, help="for the async runs, seconds")
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument(
        "--configs",
        type=lambda text: text.split(","),
        default=list(CONFIGS),
        help="which of A, B, B' to run, the first being the base of the ratios",
    )
    args = parser.parse_args()
    if unknown := set(args.configs) - set(CONFIGS):
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {list(CONFIGS)}")
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.runs = args.runs or (100 if args.quick else 200)
    args.warm_up = 1 if args.quick else 2
    return args


def main() -> int:
    args = parse()
    report: dict[str, list[str]] = {}
    with FakeLLM(args.delay) as fake:
        results = [measure(CONFIGS[label], args, fake, report) for label in args.configs]
    print(
        f"PostgreSQL + Redis (db {args.redis_db}), DEBUG=false; {os.cpu_count()} CPU cores. "
        f"Sync: {args.clients} connections x {args.seconds} s; async: {args.runs} runs of "
        f"{LLM_NODES} calls x {args.delay:g} s (fake provider), worker concurrency 50; reads: "
        f"{args.read_connections} connections x {args.seconds} s (wrk, 1 thread)."
    )
    print(
        "B is the production command, `uvicorn --workers 2` (a supervisor and 2 children "
        "accepting on one socket); B' is 2 separate uvicorn processes, each on its own "
        "SO_REUSEPORT socket on the same port (the kernel spreads connections by address). "
        f"Both have 2 `manage.py runworker`. With {os.cpu_count()} cores, B cannot show more "
        "than the cores allow: where A already keeps them busy (see the CPU tables), B/A stays "
        "near 1; the web processes also share them with PostgreSQL, wrk and the fake provider."
    )
    for result in results:
        before, after = result.load
        print(f"load average before / after {result.config.label}: {before} / {after}")
    print()
    print(figures_table(results))
    print("(a ratio above 1 is better for rates, below 1 for times and latencies)")
    for result in results:
        print()
        print(cpu_table(result))
    for line in report.get("removed", []):
        print(f"removed: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
