"""Many background runs at once: LLM-bound runs on two worker processes, each beside its floor.

Run: `python bench/bench_workers.py [--concurrency 1,50] [--runs 50] [--many 500] [--trivial 300]`.

PostgreSQL and Redis, as in production: `DEBUG=false`, one uvicorn process, two worker processes
(`manage.py runworker`, else `qcluster` of one worker each), and a fake OpenAI-compatible provider
on loopback (`bench/_fake_llm.py`) answering each chat completion after `--delay` (0.2 s). Runs go
in through `POST /api/v1/workflows/execute` (`mode: async`); their times come from the rows.

- (a) `--runs` runs of 5 sequential llm nodes (1 s of provider time each), posted at once: time
  until all are done, the most runs in flight, the most provider calls at once.
- (b) `--many` such runs: time, and none lost (every run `succeeded`, every node called once).
- (c) enqueue -> first node, one run at a time on idle workers (execution created_at to its first
  NodeRun.started_at): p50 and p95.
- (d) `--trivial` 3-node runs without LLM calls: runs/s and queue wait (created_at to started_at).

Each `--concurrency` value (AGENTFLOW_WORKER_CONCURRENCY) is a column, measured on fresh workers.

Only what the bench made is removed: it creates its own database `agentflow_bench_<random hex>`
on DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432/test) and drops that one
at the end; in Redis (REDIS_URL's server, database `--redis-db`, default 13) it writes under its
own cache prefix (the same name) and deletes only keys under it.
"""

import argparse
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
from _fake_llm import FakeLLM, marker_prompt  # noqa: E402

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"
LLM_NODES = 5
FINISHED = ("succeeded", "failed", "timed_out", "cancelled")

LLM_CHAIN = {
    "name": "five-llm-calls",
    "start_node": "input",
    "nodes": [{"id": "input", "type": "input"}]
    + [
        {
            "id": f"n{i}",
            "type": "llm",
            "metadata": {"source": "gpt", "prompt": marker_prompt(f"n{i}")},
        }
        for i in range(1, LLM_NODES + 1)
    ],
    "edges": [{"from": "input", "to": "n1"}]
    + [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(1, LLM_NODES)],
    "sources": [
        {
            "id": "gpt",
            "kind": "openai",
            "config": {
                "model_name": "gpt-4o-mini",
                "api_key_env": "OPENAI_API_KEY",
                "max_retries": 0,
            },
        }
    ],
}

TRIVIAL = {
    "name": "trivial",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "a",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "A {{ user_input }}"},
        },
        {
            "id": "b",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "B {{ final_output }}"},
        },
    ],
    "edges": [{"from": "input", "to": "a"}, {"from": "a", "to": "b"}],
}


# --- what the bench creates, and removes -----------------------------------------------------


@contextlib.contextmanager
def own_database(server_url: str, name: str) -> Iterator[str]:
    """A new database `name` on the server of `server_url`, dropped at the end: the only database
    this bench ever drops is the one it has just created."""
    import psycopg

    parts = urlsplit(server_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def own_redis_prefix(url: str, prefix: str) -> Iterator[dict[str, int]]:
    """Yield a report; at the end delete the keys under `prefix:` (only those) and count them."""
    import redis

    report = {"deleted": 0}
    try:
        yield report
    finally:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            report["deleted"] += int(client.delete(key))
        client.close()


def redis_url(base: str, db: int) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{db}"))


# --- the processes ---------------------------------------------------------------------------


def worker_command(choice: str) -> str:
    if choice != "auto":
        return choice
    exists = (ROOT / "executions/management/commands/runworker.py").exists()
    return "runworker" if exists else "qcluster"


class Processes:
    """uvicorn and the workers, each in its own process group, logs in `logs`."""

    def __init__(self, env: dict[str, str], logs: Path, timeout: float) -> None:
        self.env, self.logs, self.timeout = env, logs, timeout
        self.column = Column("")
        """The column the scenarios being run fill in."""
        self.port = _free_port()
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self) -> None:
        args = ["-m", "uvicorn", "agentflow_site.asgi:application", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        self.web = self._start("web", args, self.env)
        _wait(lambda: _answers(f"{self.url}/health/live"), 60, "the web server")

    def start_workers(self, command: str, count: int, concurrency: int) -> None:
        env = {**self.env, "AGENTFLOW_WORKER_CONCURRENCY": str(concurrency)}
        self.workers = [
            self._start(f"worker-c{concurrency}-{i}", ["manage.py", command], env)
            for i in range(count)
        ]

    def cpu(self) -> tuple[float, float]:
        """CPU seconds (user + system) the web process and the workers have used so far."""
        web = _cpu_seconds(self.web.pid) if self.web else 0.0
        return web, sum(_cpu_seconds(proc.pid) for proc in self.workers)

    def stop_workers(self) -> None:
        _stop(self.workers)
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        _stop([self.web] if self.web else [])


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _cpu_seconds(pid: int) -> float:
    """From /proc (Linux); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx2.get(url, timeout=1).status_code == 200
    except httpx2.HTTPError:
        return False


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


# --- one scenario ----------------------------------------------------------------------------


@dataclass
class Runs:
    """What a batch of runs did, read from their rows (and the fake provider's log)."""

    ids: list[str]
    markers: dict[str, str]
    """execution id -> its marker (the prompts' run=…)."""
    posted_at: float
    posted_in: float
    """Seconds until every 202 was back."""
    rows: list[tuple[str, str, datetime, datetime | None, datetime | None]] = field(
        default_factory=list
    )
    first_node: dict[str, datetime] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return sum(1 for row in self.rows if row[1] in FINISHED)

    @property
    def succeeded(self) -> int:
        return sum(1 for row in self.rows if row[1] == "succeeded")

    @property
    def took(self) -> float:
        ends = [row[4].timestamp() for row in self.rows if row[4] is not None]
        return max(ends) - self.posted_at if ends else float("nan")

    def max_in_flight(self) -> int:
        edges = []
        for _, _, _, started, finished in self.rows:
            if started is not None and finished is not None:
                edges += [(started.timestamp(), 1), (finished.timestamp(), -1)]
        most = now = 0
        for _, step in sorted(edges):
            now += step
            most = max(most, now)
        return most

    def queue_waits_ms(self) -> list[float]:
        return [
            (started - created).total_seconds() * 1000
            for _, _, created, started, _ in self.rows
            if started is not None
        ]

    def first_node_ms(self) -> list[float]:
        created = {row[0]: row[2] for row in self.rows}
        return [(at - created[i]).total_seconds() * 1000 for i, at in self.first_node.items()]


class Client:
    """Posts runs through the API, reads them back from the database."""

    def __init__(self, url: str, key: str, threads: int) -> None:
        self.url = url
        self.http = httpx2.Client(
            headers={"X-API-Key": key}, timeout=120, limits=httpx2.Limits(max_connections=threads)
        )
        self.pool = ThreadPoolExecutor(threads)

    def close(self) -> None:
        self.pool.shutdown()
        self.http.close()

    def post(self, spec: dict[str, Any], marker: str) -> str:
        body = {"workflow": spec, "mode": "async", "initial_state": {"user_input": marker}}
        answer = self.http.post(f"{self.url}/api/v1/workflows/execute", json=body)
        if answer.status_code != 202:
            raise RuntimeError(f"execute answered {answer.status_code}: {answer.text[:500]}")
        return str(answer.json()["execution_id"])

    def start(self, spec: dict[str, Any], count: int) -> Runs:
        markers = [f"r{secrets.token_hex(6)}" for _ in range(count)]
        posted_at = time.time()
        ids = list(self.pool.map(lambda marker: self.post(spec, marker), markers))
        return Runs(ids, dict(zip(ids, markers, strict=True)), posted_at, time.time() - posted_at)

    def cancel(self, ids: list[str]) -> None:
        def one(execution_id: str) -> None:
            self.http.post(f"{self.url}/api/v1/executions/{execution_id}/cancel")

        list(self.pool.map(one, ids))


def read(runs: Runs) -> Runs:
    from django.db.models import Min

    from executions.models import Execution, NodeRun

    rows = Execution.objects.filter(pk__in=runs.ids).values_list(
        "id", "status", "created_at", "started_at", "finished_at"
    )
    runs.rows = list(rows)
    firsts = (
        NodeRun.objects.filter(execution_id__in=runs.ids)
        .values("execution_id")
        .annotate(first=Min("started_at"))
    )
    runs.first_node = {row["execution_id"]: row["first"] for row in firsts}
    return runs


def wait_done(runs: Runs, timeout: float) -> Runs:
    """Until every run has ended or `timeout` passed (then the rest are cancelled)."""
    from executions.models import Execution

    deadline = time.monotonic() + timeout
    pending = Execution.objects.filter(pk__in=runs.ids).exclude(status__in=FINISHED)
    while pending.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return read(runs)


# --- the scenarios ---------------------------------------------------------------------------


@dataclass
class Column:
    """One worker setting's figures, by row label."""

    title: str
    cells: dict[str, str] = field(default_factory=dict)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _calls(fake: FakeLLM, runs: Runs) -> tuple[int, int, int]:
    """Nodes of succeeded runs never called, nodes called more than once, the most calls at
    once."""
    counts, most = fake.counts(), fake.snapshot()[1]
    ok = [runs.markers[row[0]] for row in runs.rows if row[1] == "succeeded"]
    wanted = [(m, f"n{i}") for m in ok for i in range(1, LLM_NODES + 1)]
    missing = sum(1 for pair in wanted if counts.get(pair, 0) == 0)
    repeated = sum(1 for pair in wanted if counts.get(pair, 0) > 1)
    return missing, repeated, most


def llm_runs(client: Client, fake: FakeLLM, count: int, timeout: float) -> Runs:
    fake.reset()
    runs = wait_done(client.start(LLM_CHAIN, count), timeout)
    client.cancel([row[0] for row in runs.rows if row[1] not in FINISHED])
    return runs


def scenario_llm(label: str, procs: Processes, client: Client, fake: FakeLLM, count: int) -> None:
    column, timeout = procs.column, procs.timeout
    before = procs.cpu()
    runs = llm_runs(client, fake, count, timeout)
    cpu = _cpu_used(before, procs.cpu(), count)
    missing, repeated, most_calls = _calls(fake, runs)
    lost = runs.done - runs.succeeded  # ended, but not well (runs cut at the timeout aside)
    cut = count - runs.done
    took = f"{runs.took:.2f} s" if not cut else f"cut at {timeout:.0f} s ({cut} not done)"
    column.cells[f"{label} all done"] = took
    column.cells[f"{label} posting (202s)"] = f"{runs.posted_in:.2f} s"
    after = runs.took - runs.posted_in
    column.cells[f"{label} all done after the last 202"] = f"{after:.2f} s" if not cut else "-"
    column.cells[f"{label} max runs in flight"] = str(runs.max_in_flight())
    column.cells[f"{label} max provider calls at once"] = str(most_calls)
    column.cells[f"{label} lost / node calls missing / repeated"] = (
        f"{lost} / {missing} / {repeated}"
    )
    column.cells[f"{label} CPU ms per run: web / workers"] = cpu


def _cpu_used(before: tuple[float, float], after: tuple[float, float], runs: int) -> str:
    web, workers = ((a - b) * 1000 / runs for a, b in zip(after, before, strict=True))
    return f"{web:.0f} / {workers:.0f}"


def scenario_latency(client: Client, samples: int, column: Column) -> None:
    latencies: list[float] = []
    for _ in range(samples):
        runs = wait_done(client.start(TRIVIAL, 1), 60)
        latencies += runs.first_node_ms()
        time.sleep(0.05)  # the worker is idle again
    column.cells["(c) enqueue -> first node p50"] = f"{statistics.median(latencies):.0f} ms"
    column.cells["(c) enqueue -> first node p95"] = f"{_pct(latencies, 0.95):.0f} ms"


def scenario_trivial(procs: Processes, client: Client, count: int) -> None:
    column = procs.column
    before = procs.cpu()
    runs = wait_done(client.start(TRIVIAL, count), procs.timeout)
    cpu = _cpu_used(before, procs.cpu(), count)
    client.cancel([row[0] for row in runs.rows if row[1] not in FINISHED])
    waits = runs.queue_waits_ms()
    done = runs.succeeded
    column.cells["(d) trivial runs/s"] = f"{done / runs.took:.1f} ({done}/{count} ok)"
    column.cells["(d) queue wait p50"] = f"{statistics.median(waits):.0f} ms" if waits else "-"
    column.cells["(d) queue wait p95"] = f"{_pct(waits, 0.95):.0f} ms" if waits else "-"
    column.cells["(d) CPU ms per run: web / workers"] = cpu


def measure(
    args: argparse.Namespace, procs: Processes, client: Client, fake: FakeLLM, concurrency: int
) -> Column:
    command = worker_command(args.worker)
    setting = f"concurrency {concurrency}" if command == "runworker" else "one run each"
    procs.column = column = Column(f"{command} x{args.processes}, {setting}")
    procs.start_workers(command, args.processes, concurrency)
    try:
        # Warm up: each worker's first run imports the provider SDKs.
        llm_runs(client, fake, 2 * args.processes, 120)
        scenario_latency(client, args.latency_samples, column)
        scenario_llm("(a)", procs, client, fake, args.runs)
        if args.many:
            scenario_llm("(b)", procs, client, fake, args.many)
        if args.trivial:
            scenario_trivial(procs, client, args.trivial)
    finally:
        procs.stop_workers()
    return column


# --- output ----------------------------------------------------------------------------------


def floors(args: argparse.Namespace) -> dict[str, str]:
    provider = LLM_NODES * args.delay
    return {
        "(a) all done": f"{provider:.1f} s of provider time per run; target < 3 s",
        "(a) max runs in flight": f"{args.runs}",
        "(a) max provider calls at once": f"{args.runs}",
        "(a) lost / node calls missing / repeated": "0 / 0 / 0",
        "(b) all done": f"target < 15 s (concurrency 50: {_floor(args, args.many):.0f} s)",
        "(b) lost / node calls missing / repeated": "0 / 0 / 0",
        "(c) enqueue -> first node p50": "target < 50 ms",
    }


def _floor(args: argparse.Namespace, count: int) -> float:
    slots = args.processes * 50
    return -(-count // slots) * LLM_NODES * args.delay


def table(columns: list[Column], notes: dict[str, str]) -> str:
    labels: list[str] = []
    for column in columns:
        labels += [label for label in column.cells if label not in labels]
    header = ["", *(c.title for c in columns), "floor / target"]
    rows = [
        [label, *(c.cells.get(label, "-") for c in columns), notes.get(label, "")]
        for label in labels
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def environment(
    args: argparse.Namespace, database: str, prefix: str, data_dir: str, fake: FakeLLM
) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database,
        "REDIS_URL": redis_url(os.environ.get("REDIS_URL", DEFAULT_REDIS), args.redis_db),
        "CACHE_KEY_PREFIX": prefix,
        "DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "API_THROTTLE_RATE": "1000000/min",
        "AGENTFLOW_DATA_DIR": data_dir,
        "AGENTFLOW_PROVIDER_BASE_URLS": json.dumps({"openai": fake.base_url}),
        "AGENTFLOW_TRUSTED_PROVIDER_HOSTS": "127.0.0.1",
        "OPENAI_API_KEY": "sk-bench-" + secrets.token_hex(12),
        "LOG_LEVEL": "WARNING",
        "Q_WORKERS": "1",  # qcluster only: one run per process
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def run(args: argparse.Namespace, env: dict[str, str], fake: FakeLLM, logs: Path) -> list[Column]:
    manage(env, "migrate", "-v0")
    manage(env, "createtenant", "bench", "--allow-env", "OPENAI_API_KEY")
    key = manage(env, "createapikey", "--tenant", "bench", "--role", "executor")
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentflow_site.settings")
    import django

    django.setup()
    procs = Processes(env, logs, args.timeout)
    client = Client(procs.url, key, args.clients)
    try:
        procs.start_web()
        return [measure(args, procs, client, fake, c) for c in args.concurrency]
    finally:
        client.close()
        procs.stop()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--concurrency",
        "--workers-per-process",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[50],
        help="AGENTFLOW_WORKER_CONCURRENCY values, one column each (e.g. 1,50)",
    )
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--worker", choices=["auto", "runworker", "qcluster"], default="auto")
    parser.add_argument("--runs", type=int, default=50, help="(a) LLM-bound runs at once")
    parser.add_argument("--many", type=int, default=500, help="(b) LLM-bound runs; 0 skips")
    parser.add_argument("--trivial", type=int, default=300, help="(d) trivial runs; 0 skips")
    parser.add_argument("--latency-samples", type=int, default=30)
    parser.add_argument("--delay", type=float, default=0.2, help="the fake provider's answer time")
    parser.add_argument("--clients", type=int, default=32, help="threads posting runs")
    parser.add_argument("--timeout", type=float, default=120, help="per scenario, seconds")
    parser.add_argument("--redis-db", type=int, default=13)
    return parser.parse_args()


def main() -> int:
    args = parse()
    name = f"agentflow_bench_{secrets.token_hex(6)}"
    logs = Path(tempfile.mkdtemp(prefix="agentflow-bench-workers-"))
    server = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    if not server.startswith("postgres"):
        print("bench_workers needs PostgreSQL: DATABASE_URL=postgres://…", file=sys.stderr)
        return 2
    redis = redis_url(os.environ.get("REDIS_URL", DEFAULT_REDIS), args.redis_db)
    with (
        FakeLLM(args.delay) as fake,
        own_database(server, name) as database,
        own_redis_prefix(redis, name) as redis_report,
    ):
        env = environment(args, database, name, str(logs), fake)
        columns = run(args, env, fake, logs)
        from django.db import connections

        connections.close_all()  # before the database is dropped
    print(
        f"PostgreSQL + Redis (db {args.redis_db}), DEBUG=false, 1 uvicorn process, "
        f"{args.processes} worker processes; fake provider answers in {args.delay:g} s; "
        f"{os.cpu_count()} CPUs; logs in {logs}"
    )
    print(table(columns, floors(args)))
    print(f"removed: database {name}; {redis_report['deleted']} Redis keys under {name}:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
