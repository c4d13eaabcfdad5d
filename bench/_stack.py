"""The production stack for a bench: PostgreSQL + Redis, DEBUG=false, uvicorn and run workers.

`site(...)` makes what a bench needs and removes only that: a database `agentflow_bench_<hex>`
(created, migrated, dropped), Redis keys under its own cache prefix (deleted at the end), a
tenant and an executor key (manage.py), a fake OpenAI-compatible provider. `Stack` starts the
web server with the production flags (`--workers N` when N > 1) and `manage.py runworker`
processes, and reads each process's CPU time and RSS from /proc. `wrk(...)` drives HTTP load
with wrk and a Lua script that reports p50/p95 (wrk's own summary has no p95).
"""

import contextlib
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
from _fake_llm import FakeLLM  # noqa: E402
from bench_workers import (  # noqa: E402
    DEFAULT_DATABASE,
    DEFAULT_REDIS,
    Runs,
    _cpu_seconds,
    _free_port,
    _stop,
    _wait,
    environment,
    manage,
    own_database,
    own_redis_prefix,
    redis_url,
)

WEB_FLAGS = ["--http", "agentflow_site.serving:HTTPProtocol", "--no-access-log"]
WEB_FLAGS += ["--host", "127.0.0.1", "--log-level", "warning"]
# DRF keeps every request time of the window in the cache: a one-second window keeps that list
# a few hundred long under load, where bench_workers' 1000000/min would grow it to the whole
# minute's requests (and re-pickle it on every request).
THROTTLE = "999999/s"
# One uvicorn server with the production protocol on its own SO_REUSEPORT socket (`--fd` would
# label the socket AF_UNIX, and then nothing turns Nagle off on its connections).
REUSEPORT = """
import socket, sys, uvicorn
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
config = uvicorn.Config(
    "agentflow_site.asgi:application", http="agentflow_site.serving:HTTPProtocol",
    access_log=False, log_level="warning",
)
uvicorn.Server(config).run(sockets=[sock])
"""


# --- what a bench makes, and removes ---------------------------------------------------------


@dataclass
class Site:
    """A database, a Redis prefix, a tenant and its key, and the environment to run in."""

    name: str
    database: str
    env: dict[str, str]
    key: str
    fake: FakeLLM
    logs: Path
    redis_db: int


@contextlib.contextmanager
def site(redis_db: int, fake: FakeLLM, report: dict[str, list[str]]) -> Iterator[Site]:
    """A fresh database and cache prefix; on the way out both are removed and `report["removed"]`
    says what was."""
    server = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    if not server.startswith("postgres"):
        raise SystemExit("this bench needs PostgreSQL: DATABASE_URL=postgres://…")
    name = f"agentflow_bench_{secrets.token_hex(6)}"
    logs = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    redis = redis_url(os.environ.get("REDIS_URL", DEFAULT_REDIS), redis_db)
    with (
        own_database(server, name) as database,
        own_redis_prefix(redis, name) as redis_report,
    ):
        env = environment(_Args(redis_db), database, name, str(logs), fake)  # type: ignore[arg-type]
        env["API_THROTTLE_RATE"] = THROTTLE
        manage(env, "migrate", "-v0")
        manage(env, "createtenant", "bench", "--allow-env", "OPENAI_API_KEY")
        key = manage(env, "createapikey", "--tenant", "bench", "--role", "executor")
        yield Site(name, database, env, key, fake, logs, redis_db)
    report.setdefault("removed", []).append(
        f"database {name}; {redis_report['deleted']} Redis keys under {name}: (db {redis_db})"
    )


@dataclass
class _Args:
    redis_db: int


Row = tuple[str, str, datetime, datetime | None, datetime | None]


def execution_rows(site: Site, ids: list[str] | None = None) -> list[Row]:
    """(id, status, created_at, started_at, finished_at) of the given runs, or of all of them."""
    import psycopg

    sql = "SELECT id, status, created_at, started_at, finished_at FROM executions_execution"
    with psycopg.connect(site.database) as conn:
        if ids is None:
            return list(conn.execute(sql + " ORDER BY created_at"))
        return list(conn.execute(sql + " WHERE id = ANY(%s)", [ids]))


def wait_runs(site: Site, runs: Runs, timeout: float) -> Runs:
    """Until every run has ended or `timeout` passed; the rows end up in `runs.rows`."""
    deadline = time.monotonic() + timeout
    while True:
        runs.rows = execution_rows(site, runs.ids)
        if runs.done == len(runs.ids) or time.monotonic() > deadline:
            return runs
        time.sleep(0.05)


# --- the processes ---------------------------------------------------------------------------


class Stack:
    """uvicorn and the run workers, each in its own process group, logs in the site's dir."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.port = _free_port()
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.webs: list[subprocess.Popen[bytes]] = []
        """The separate uvicorn processes of mode "reuseport"."""
        self.names: dict[int, str] = {}
        """pid -> a name, for every process of the stack (uvicorn's own children included)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.site.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.names[proc.pid] = name
        return proc

    def start_web(self, processes: int, mode: str = "workers") -> None:
        """One uvicorn process; or `--workers N` (mode "workers": a supervisor and N children
        accepting on one socket); or N uvicorn processes, each with its own SO_REUSEPORT socket
        on the same port (mode "reuseport": the kernel spreads connections by their address)."""
        if processes > 1 and mode == "reuseport":
            self.webs = [
                self._start(f"web {i}", ["-c", REUSEPORT, str(self.port)], self.site.env)
                for i in range(1, processes + 1)
            ]
        else:
            args = ["-m", "uvicorn", "agentflow_site.asgi:application", "--port", str(self.port)]
            args += WEB_FLAGS + (["--workers", str(processes)] if processes > 1 else [])
            name = "web" if processes == 1 else "web supervisor"
            self.web = self._start(name, args, self.site.env)
        _wait(lambda: _answers(f"{self.url}/health/live"), 90, "the web server")
        if processes > 1 and self.web is not None:
            web = self.web.pid
            kids = _wait(lambda: _enough(_servers(web), processes), 90, "uvicorn's workers")
            self.names |= {pid: f"web {i}" for i, pid in enumerate(sorted(kids), 1)}
        _settle([pid for pid, name in self.names.items() if name.startswith("web")])

    def start_workers(self, count: int, concurrency: int = 50) -> None:
        env = {**self.site.env, "AGENTFLOW_WORKER_CONCURRENCY": str(concurrency)}
        first = len(self.workers) + 1
        self.workers += [
            self._start(f"worker {i}", ["manage.py", "runworker"], env)
            for i in range(first, first + count)
        ]
        _wait(lambda: _workers_alive(self.url) >= len(self.workers), 90, "the run workers")

    def pids(self) -> dict[str, int]:
        return {name: pid for pid, name in self.names.items()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) each process has used so far."""
        return {name: _cpu_seconds(pid) for name, pid in self.pids().items()}

    def rss(self) -> dict[str, float]:
        """Each process's resident memory now, MB (VmRSS)."""
        return {name: rss_mb(pid) for name, pid in self.pids().items()}

    def stop(self) -> None:
        _stop(self.workers)
        _stop([self.web] if self.web else self.webs)
        self.workers, self.web, self.webs = [], None, []


def _answers(url: str) -> bool:
    try:
        return httpx2.get(url, timeout=2).status_code == 200
    except httpx2.HTTPError:
        return False


def _settle(pids: list[int], timeout: float = 90) -> None:
    """Until the processes have finished starting: none used 20 ms of CPU in half a second
    (a second uvicorn process may still be importing the app when the first answers)."""
    deadline = time.monotonic() + timeout
    before = [_cpu_seconds(pid) for pid in pids]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = [_cpu_seconds(pid) for pid in pids]
        if all(b - a < 0.02 for a, b in zip(before, now, strict=True)):
            return
        before = now


def _workers_alive(url: str) -> int:
    try:
        health = httpx2.get(f"{url}/health", timeout=2).json()
    except (httpx2.HTTPError, ValueError):
        return 0
    return int(health.get("dependencies", {}).get("workers", {}).get("processes", 0))


def _enough(pids: list[int], count: int) -> list[int] | None:
    return pids if len(pids) >= count else None


def _servers(pid: int) -> list[int]:
    """uvicorn's worker processes under its supervisor (multiprocessing's resource tracker, also
    a child, left out)."""
    return [kid for kid in children(pid) if b"resource_tracker" not in _cmdline(kid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float:
    """VmRSS of a process, MB; NaN once it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- what else used the CPU ------------------------------------------------------------------


def database_backends(name: str) -> list[int]:
    """PostgreSQL backend pids connected to database `name` (a local server: /proc reads them)."""
    import psycopg

    server = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name])
        return [int(row[0]) for row in rows]


@dataclass
class CpuMeter:
    """CPU seconds over a phase: the stack's processes, this database's PostgreSQL backends,
    wrk (finished children of this process) and this process itself (its client threads and the
    fake provider)."""

    stack: Stack
    database: str
    started: float = 0.0
    before: dict[str, float] = field(default_factory=dict)
    backends: dict[int, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    def __enter__(self) -> "CpuMeter":
        self.before = self._now()
        self.backends = {pid: _cpu_seconds(pid) for pid in database_backends(self.database)}
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.started
        after = self._now()
        self.used = {name: after[name] - self.before.get(name, 0.0) for name in after}
        postgres = 0.0
        for pid in database_backends(self.database):
            now = _cpu_seconds(pid)
            if now == now:  # not NaN: the backend is still there
                postgres += now - self.backends.get(pid, 0.0)
        self.used["postgres (this database)"] = postgres
        machine = self.used.pop("machine")
        self.used["everything else on the machine"] = machine - sum(self.used.values())

    def _now(self) -> dict[str, float]:
        ours = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            **self.stack.cpu(),
            "wrk": kids.ru_utime + kids.ru_stime,
            "bench (clients, fake LLM)": ours.ru_utime + ours.ru_stime,
            "machine": machine_busy(),
        }

    def cores(self) -> dict[str, float]:
        """Cores each used on average over the phase (CPU seconds / wall seconds)."""
        return {name: used / self.wall for name, used in self.used.items() if self.wall}


# --- wrk ---------------------------------------------------------------------------------------


@dataclass
class Load:
    """What one wrk run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    bad: int
    """Non-2xx answers and socket errors (connect, read, write, timeout)."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")


_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def lua_headers(key: str) -> str:
    return f'wrk.headers["X-API-Key"] = "{key}"\n'


def lua_post(path: str, body: str) -> str:
    quoted = body.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'wrk.method = "POST"\nwrk.path = "{path}"\nwrk.body = "{quoted}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def lua_rotate(paths: list[str]) -> str:
    """Each request the next path of `paths` (per wrk thread)."""
    listed = ", ".join(f'"{p}"' for p in paths)
    return (
        f"local paths = {{{listed}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\nend\n'
    )


def wrk(url: str, script: str, connections: int, seconds: float, threads: int = 1) -> Load:
    """`connections` keep-alive connections for `seconds` (wrk's threads: `threads`)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script + _DONE)
    try:
        args = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "60s",
        ]
        out = subprocess.run(
            [*args, "-s", lua.name, url], capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(lua.name)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, duration_us, p50_us, p95_us, bad = (int(x) for x in line.split()[1:])
    return Load(requests, duration_us / 1e6, p50_us / 1000, p95_us / 1000, bad)


def machine_busy() -> float:
    """CPU seconds every core of the machine has spent busy (not idle nor waiting for I/O)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def mb(value: Any) -> str:
    return f"{value:.1f}"
