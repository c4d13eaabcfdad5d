"""Faults a run worker meets: killed mid-run, stopped by SIGTERM; and what the cancel check
before every node start costs.

Run: `python bench/bench_faults.py [--runs 20] [--delay 2] [--grace 2] [--chain 20]
[--chain-runs 100] [--only kill,term,chain] [--redis-db 13]`.

PostgreSQL + Redis, `DEBUG=false`, one uvicorn process and `manage.py runworker` processes with
the default stale interval (AGENTFLOW_HEARTBEAT_STALE unset: 20 s) and poll (2 s); a fake
OpenAI-compatible provider answers each call after `--delay` s and logs it with its run and node.

- kill: `--runs` runs of 5 llm nodes on worker 1; once each has an answer saved in its
  checkpoint, worker 1's process group gets SIGKILL and a new worker starts at once (what
  systemd's `Restart=always` does). Recovery: from the kill until every run was taken up again
  by the new worker (its row says so; polled every 50 ms); then until all ended. Stranded: runs
  not taken up within 30 s of the kill. Repeated: provider calls asked again, all of them and
  those whose answer the run's checkpoint held at the kill (must be 0).
- term: the same with worker 1 stopped by SIGTERM to its process group, the second worker
  already running, AGENTFLOW_WORKER_GRACE `--grace`: time to exit, and until every run it handed
  back was taken up by the other (hand-back: at once, not after the stale interval).
- chain: a `--chain`-node chain of template nodes through one worker: one run at a time (its
  time on the worker, started_at to finished_at, p50 and p95), then `--chain-runs` at once
  (runs/s). Each node start waits for the worker's answer to "was a cancel asked?".

Only what the bench made is removed: its database `agentflow_bench_<hex>` and the Redis keys
under its own cache prefix in database `--redis-db`.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from _fake_llm import FakeLLM
from _stack import Site, Stack, load_average, pct, site, wait_runs
from bench_runtime import chain_spec
from bench_workers import FINISHED, LLM_CHAIN, LLM_NODES, Client, Runs, _wait

STRANDED_AFTER = 30.0
"""The issue's bound on recovery after one worker kill."""


@dataclass
class Recovery:
    label: str
    figures: dict[str, str] = field(default_factory=dict)


def _rows(site: Site, ids: list[str]) -> dict[str, tuple[str, str, int]]:
    """id -> (status, worker, deliveries)."""
    sql = "SELECT id, status, worker, deliveries FROM executions_execution WHERE id = ANY(%s)"
    with psycopg.connect(site.database) as conn:
        return {row[0]: (row[1], row[2], row[3]) for row in conn.execute(sql, [ids])}


def _worker_names(site: Site) -> set[str]:
    with psycopg.connect(site.database) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM executions_worker")}


def _start_worker(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    before = _worker_names(stack.site)
    proc = stack._start(name, ["manage.py", "runworker"], stack.site.env)
    stack.workers.append(proc)
    _wait(lambda: _worker_names(stack.site) - before, 120, f"{name} to register")
    return proc


def _saved_nodes(site: Site, ids: list[str]) -> dict[str, set[str]]:
    """The llm nodes whose answer each run's checkpoints hold (as a resuming run reads them)."""
    from langgraph.checkpoint.postgres import PostgresSaver

    from runtime.compiler import compile_workflow
    from runtime.validation import validate_spec

    found: dict[str, set[str]] = {}
    with PostgresSaver.from_conn_string(site.database) as saver:
        compiled = compile_workflow(validate_spec(LLM_CHAIN), state_keys=["user_input"])
        graph = compiled.graph.copy(update={"checkpointer": saver})
        for execution_id in ids:
            config: Any = {"configurable": {"thread_id": execution_id}}
            outputs = set((graph.get_state(config).values or {}).get("outputs") or {})
            saved = saver.get_tuple(config)
            for _task, channel, value in (saved.pending_writes if saved else None) or []:
                if channel == "outputs" and isinstance(value, dict):
                    outputs |= set(value)
            found[execution_id] = {node for node in outputs if node.startswith("n")}
    return found


def _taken_up(
    site: Site, ids: list[str], lost: str, since: float, timeout: float
) -> dict[str, float]:
    """Seconds after `since` at which each run was first seen held by a worker other than
    `lost` (or ended); polled every 50 ms until all were or `timeout` passed."""
    taken: dict[str, float] = {}
    deadline = since + timeout
    while len(taken) < len(ids) and time.monotonic() < deadline:
        now = time.monotonic() - since
        for execution_id, (status, worker, _) in _rows(site, ids).items():
            if execution_id not in taken and (worker != lost or status in FINISHED):
                taken[execution_id] = now
        time.sleep(0.05)
    return taken


def _repeats(fake: FakeLLM, markers: dict[str, str], saved: dict[str, set[str]]) -> tuple[int, int]:
    """Calls asked again: all, and those whose answer the checkpoint held."""
    counts = fake.counts()
    repeated = sum(max(0, n - 1) for n in counts.values())
    of_saved = sum(
        max(0, counts.get((markers[i], node), 0) - 1)
        for i, nodes in saved.items()
        for node in nodes
    )
    return repeated, of_saved


def _start_runs(stack: Stack, client: Client, count: int) -> tuple[Any, dict[str, str]]:
    """Post `count` runs; once all run and each has an answer saved: the runs, and the worker
    holding each."""
    runs = client.start(LLM_CHAIN, count)
    ids = runs.ids
    _wait(
        lambda: all(r[0] == "running" for r in _rows(stack.site, ids).values()),
        120,
        "every run to be running",
    )
    _wait(lambda: all(_saved_nodes(stack.site, ids).values()), 120, "an answer saved in each run")
    return runs, {i: row[1] for i, row in _rows(stack.site, ids).items()}


def _name(proc: subprocess.Popen[bytes]) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def scenario_kill(stack: Stack, client: Client, args: argparse.Namespace) -> Recovery:
    fake = stack.site.fake
    fake.reset()
    first = _start_worker(stack, "worker 1")
    runs, _ = _start_runs(stack, client, args.runs)
    os.killpg(first.pid, signal.SIGKILL)
    killed = time.monotonic()
    first.wait(timeout=30)
    saved = _saved_nodes(stack.site, runs.ids)
    _start_worker(stack, "worker 2")
    taken = _taken_up(stack.site, runs.ids, _name(first), killed, 120)
    wait_runs(stack.site, runs, 180)
    ended = time.monotonic() - killed
    return _recovery("kill -9, new worker", runs, taken, ended, _repeats(fake, runs.markers, saved))


def scenario_term(stack: Stack, client: Client, args: argparse.Namespace) -> Recovery:
    """Two workers share the runs; the one holding more is stopped."""
    fake = stack.site.fake
    fake.reset()
    workers = [_start_worker(stack, "worker 3"), _start_worker(stack, "worker 4")]
    runs, holders = _start_runs(stack, client, args.runs)
    stopped = max(workers, key=lambda proc: list(holders.values()).count(_name(proc)))
    ids = [i for i, worker in holders.items() if worker == _name(stopped)]
    os.killpg(stopped.pid, signal.SIGTERM)
    termed = time.monotonic()
    stopped.wait(timeout=60 + args.grace)
    exited = time.monotonic() - termed
    saved = _saved_nodes(stack.site, ids)
    taken = _taken_up(stack.site, ids, _name(stopped), termed, 120)
    wait_runs(stack.site, runs, 180)
    ended = time.monotonic() - termed
    mine = Runs(ids, {i: runs.markers[i] for i in ids}, runs.posted_at, runs.posted_in)
    mine.rows = [row for row in runs.rows if row[0] in ids]
    label = f"SIGTERM (grace {args.grace:g} s) to the worker holding {len(ids)}/{len(runs.ids)}"
    recovery = _recovery(label, mine, taken, ended, _repeats(fake, mine.markers, saved))
    handed = sum(1 for i in ids if _rows(stack.site, ids)[i][2] > 1)
    recovery.figures["worker exited after"] = f"{exited:.2f} s"
    recovery.figures["handed back (not done within grace)"] = f"{handed}/{len(ids)}"
    return recovery


def _recovery(
    label: str, runs: Any, taken: dict[str, float], ended: float, repeats: tuple[int, int]
) -> Recovery:
    count = len(runs.ids)
    late = [t for t in taken.values() if t > STRANDED_AFTER]
    statuses = [row[1] for row in runs.rows]
    return Recovery(
        label,
        {
            "all taken up again after": f"{max(taken.values()):.2f} s"
            if len(taken) == count
            else f"{len(taken)}/{count} by 120 s",
            "first taken up after": f"{min(taken.values()):.2f} s" if taken else "-",
            f"stranded past {STRANDED_AFTER:g} s": str(count - len(taken) + len(late)),
            "all ended after": f"{ended:.2f} s",
            "succeeded": f"{statuses.count('succeeded')}/{count}",
            "calls repeated (all / answer saved)": f"{repeats[0]} / {repeats[1]}",
        },
    )


def scenario_chain(stack: Stack, client: Client, args: argparse.Namespace) -> Recovery:
    _start_worker(stack, "worker chain")
    spec = chain_spec(args.chain)
    wait_runs(stack.site, client.start(spec, 3), 60)  # warm-up
    took = []
    for _ in range(args.chain_samples):
        runs = wait_runs(stack.site, client.start(spec, 1), 60)
        took += [(r[4] - r[3]).total_seconds() * 1000 for r in runs.rows if r[3] and r[4]]
    many = wait_runs(stack.site, client.start(spec, args.chain_runs), 180)
    ok = [r for r in many.rows if r[1] == "succeeded"]
    return Recovery(
        f"{args.chain}-node template chain, 1 worker",
        {
            "one run on the worker p50": f"{statistics.median(took):.1f} ms",
            "one run on the worker p95": f"{pct(took, 0.95):.1f} ms",
            f"{args.chain_runs} at once": f"{len(ok) / many.took:.1f} runs/s "
            f"({len(ok)}/{args.chain_runs} ok)",
        },
    )


SCENARIOS = {"kill": scenario_kill, "term": scenario_term, "chain": scenario_chain}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs in flight at the fault")
    parser.add_argument("--delay", type=float, default=2.0, help="the fake provider's answer time")
    parser.add_argument("--grace", type=float, default=2.0, help="AGENTFLOW_WORKER_GRACE")
    parser.add_argument("--chain", type=int, default=20, help="nodes of the chain")
    parser.add_argument("--chain-runs", type=int, default=100)
    parser.add_argument("--chain-samples", type=int, default=30)
    parser.add_argument("--only", default="kill,term,chain", help="scenarios, comma-separated")
    parser.add_argument("--clients", type=int, default=16, help="threads posting runs")
    parser.add_argument("--redis-db", type=int, default=13)
    return parser.parse_args()


def main() -> int:
    args = parse()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    report: dict[str, list[str]] = {}
    results: list[Recovery] = []
    with FakeLLM(args.delay) as fake, site(args.redis_db, fake, report) as where:
        where.env["AGENTFLOW_WORKER_GRACE"] = str(args.grace)
        stack = Stack(where)
        client = Client(stack.url, where.key, args.clients)
        try:
            stack.start_web(1)
            load = load_average()
            for name in chosen:
                results.append(SCENARIOS[name](stack, client, args))
                _stop_workers(stack)
        finally:
            client.close()
            stack.stop()
    print(
        f"PostgreSQL + Redis (db {args.redis_db}), DEBUG=false, 1 uvicorn, runworker processes "
        f"(concurrency 50, stale interval 20 s, poll 2 s); {args.runs} runs of {LLM_NODES} llm "
        f"calls x {args.delay:g} s; {os.cpu_count()} CPUs; load average {load}"
    )
    for result in results:
        print(f"\n{result.label}")
        for label, value in result.figures.items():
            print(f"  {label:<40} {value}")
    for line in report.get("removed", []):
        print(f"\nremoved: {line}")
    return 0


def _stop_workers(stack: Stack) -> None:
    for proc in stack.workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    stack.workers = []


if __name__ == "__main__":
    sys.exit(main())
