"""Soak: each process's memory over 10,000 requests to one uvicorn process and 1,000 runs
through one worker.

Run: `python bench/bench_soak.py [--quick] [--requests 10000] [--runs 1000] [--clients 8]
[--samples 10] [--delay 0.05] [--redis-db 12]`.

PostgreSQL + Redis with `DEBUG=false`, one uvicorn process with the production flags and one
`manage.py runworker` (concurrency 50). After a warm-up (200 requests, 50 runs), `--requests`
requests by `--clients` keep-alive connections, mixed: `/health/live`, `/api/v1/me`,
`GET /api/v1/executions?page_size=20`, `GET /api/v1/executions/{id}`, and every 10th a sync
execute of a tiny 3-node spec; then `--runs` async runs through the worker, half of them 5 llm
calls answered by the fake provider after `--delay` s, half the tiny spec, posted
`--runs / --samples` at a time. Each process's RSS (VmRSS from /proc) is read after the warm-up,
after each slice and at the end; the verdict per process is "flat" when it grew by less than
10 % or 30 MB after the warm-up (printed; the exit status does not depend on it).

Only what the bench made is removed: its database `agentflow_bench_<hex>` and the Redis keys
under its own cache prefix in database `--redis-db`.
"""

import argparse
import collections
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _fake_llm import FakeLLM
from _stack import Stack, load_average, site, wait_runs
from bench_scaleout import render
from bench_workers import LLM_CHAIN, TRIVIAL, Client, _calls

KINDS = ["live", "me", "list", "detail", "live", "me", "list", "detail", "detail", "execute"]
"""Request i is KINDS[i % 10]: a sync execute every 10th."""
GROWTH_PCT, GROWTH_MB = 10.0, 30.0


@dataclass
class Sample:
    point: str
    requests: int
    runs: int
    seconds: float
    rss: dict[str, float]


@dataclass
class Soak:
    stack: Stack
    client: Client
    ids: list[str]
    """Runs whose detail the reads ask for."""
    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    runs: int = 0
    answers: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    samples: list[Sample] = field(default_factory=list)
    run_checks: collections.Counter[str] = field(default_factory=collections.Counter)

    def sample(self, point: str) -> None:
        seconds = time.monotonic() - self.started
        self.samples.append(Sample(point, self.requests, self.runs, seconds, self.stack.rss()))

    def one(self, i: int) -> None:
        kind = KINDS[i % len(KINDS)]
        url, http = self.stack.url, self.client.http
        if kind == "live":
            answer = http.get(f"{url}/health/live")
        elif kind == "me":
            answer = http.get(f"{url}/api/v1/me")
        elif kind == "list":
            answer = http.get(f"{url}/api/v1/executions?page_size=20")
        elif kind == "detail":
            answer = http.get(f"{url}/api/v1/executions/{self.ids[i % len(self.ids)]}")
        else:
            body = {"workflow": TRIVIAL, "mode": "sync", "initial_state": {"user_input": str(i)}}
            answer = http.post(f"{url}/api/v1/workflows/execute", json=body)
        self.answers[kind, answer.status_code] += 1

    def drive(self, count: int) -> None:
        first = self.requests
        list(self.client.pool.map(self.one, range(first, first + count)))
        self.requests += count

    def run(self, count: int, timeout: float) -> None:
        fake = self.stack.site.fake
        fake.reset()
        llm = self.client.start(LLM_CHAIN, count // 2)
        tiny = self.client.start(TRIVIAL, count - count // 2)
        site = self.stack.site
        llm, tiny = wait_runs(site, llm, timeout), wait_runs(site, tiny, timeout)
        missing, repeated, _ = _calls(fake, llm)
        self.run_checks["succeeded"] += llm.succeeded + tiny.succeeded
        self.run_checks["llm calls missing"] += missing
        self.run_checks["llm calls repeated"] += repeated
        self.ids = (self.ids + llm.ids + tiny.ids)[-200:]
        self.runs += count


def soak(args: argparse.Namespace, stack: Stack) -> Soak:
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
        for i in range(1, args.samples + 1):
            state.drive(args.requests * i // args.samples - state.requests)
            state.sample(f"requests {i}/{args.samples}")
        for i in range(1, args.samples + 1):
            state.run(args.runs * i // args.samples - state.runs, args.timeout)
            state.sample(f"runs {i}/{args.samples}")
        time.sleep(args.settle)
        state.sample(f"end (+{args.settle:g} s idle)")
    finally:
        client.close()
    return state


# --- output ----------------------------------------------------------------------------------


def series_table(state: Soak) -> str:
    names = list(state.samples[0].rss)
    header = ["point", "requests", "runs", "elapsed s", *(f"{n} RSS MB" for n in names)]
    rows = [
        [s.point, str(s.requests), str(s.runs), f"{s.seconds:.0f}"]
        + [f"{s.rss[n]:.1f}" for n in names]
        for s in state.samples
    ]
    return render(header, rows)


def growth_table(state: Soak) -> str:
    first, last = state.samples[0], state.samples[-1]
    middle = state.samples[len(state.samples) // 2]
    header = ["process", "after warm-up MB", "end MB", "growth MB", "growth %"]
    header += ["2nd half MB", "peak (VmHWM) MB", "verdict"]
    rows = []
    for name, pid in state.stack.pids().items():
        before, after = first.rss[name], last.rss[name]
        grown = after - before
        pct = 100 * grown / before
        flat = grown < GROWTH_MB or pct < GROWTH_PCT
        verdict = "flat" if flat else f"GROWING (over {GROWTH_PCT:g} % and {GROWTH_MB:g} MB)"
        second_half = after - middle.rss[name]
        cells = [f"{before:.1f}", f"{after:.1f}", f"{grown:+.1f}", f"{pct:+.1f}"]
        rows.append([name, *cells, f"{second_half:+.1f}", f"{_peak(pid):.1f}", verdict])
    return render(header, rows)


def _peak(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def answers_line(state: Soak) -> str:
    by_kind = collections.Counter(kind for kind, _ in state.answers.elements())
    bad = sum(n for (_, status), n in state.answers.items() if not 200 <= status < 300)
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(by_kind.items()))
    return f"requests: {sum(by_kind.values())} ({kinds}); non-2xx: {bad}"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 requests and 200 runs")
    parser.add_argument("--requests", type=int, help="default 10,000 (quick 2,000)")
    parser.add_argument("--runs", type=int, help="default 1,000 (quick 200)")
    parser.add_argument("--clients", type=int, default=8, help="connections sending requests")
    parser.add_argument("--samples", type=int, default=10, help="RSS readings per phase")
    parser.add_argument("--warm-requests", type=int, default=200)
    parser.add_argument("--warm-runs", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.05, help="the fake provider's answer time")
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds before the end")
    parser.add_argument("--timeout", type=float, default=300, help="per slice of runs, seconds")
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()
    args.requests = args.requests or (2_000 if args.quick else 10_000)
    args.runs = args.runs or (200 if args.quick else 1_000)
    return args


def main() -> int:
    args = parse()
    report: dict[str, list[str]] = {}
    with FakeLLM(args.delay) as fake, site(args.redis_db, fake, report) as where:
        stack = Stack(where)
        try:
            stack.start_web(1)
            stack.start_workers(1)
            load = load_average()
            state = soak(args, stack)
            print(
                f"PostgreSQL + Redis (db {args.redis_db}), DEBUG=false; 1 uvicorn process "
                f"(production flags), 1 runworker (concurrency 50); load average {load}. "
                f"Warm-up {args.warm_requests} requests and {args.warm_runs} runs; then "
                f"{args.requests} requests on {args.clients} connections and {args.runs} runs "
                f"(half 5 llm calls x {args.delay:g} s, half a 3-node template spec)."
            )
            print(answers_line(state))
            checks = state.run_checks
            print(
                f"runs: {checks['succeeded']}/{args.runs} succeeded; llm calls missing "
                f"{checks['llm calls missing']}, repeated {checks['llm calls repeated']}"
            )
            print()
            print(series_table(state))
            print()
            print(growth_table(state))
        finally:
            stack.stop()
    for line in report.get("removed", []):
        print(f"removed: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
