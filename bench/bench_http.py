"""What a request pays over real HTTP: `/health/live` and `/api/v1/me` beside a bare Django view.

Run: `python bench/bench_http.py [--rounds N] [--requests N] [--postgres URL] [--redis URL]
[--no-nodelay] [--skip-workers]`.

Two uvicorn servers with the production flags (`--http agentflow_site.serving:HTTPProtocol
--no-access-log`): the bare view (bench/_bare_site.py: one view, no middleware) and AgentFlow
with `DEBUG=false` and its default logging (a JSON line per request, to a file), on SQLite in a
temporary directory, or with `--postgres` on a database it creates under a unique name
(`agentflow_bench_<hex>`) and drops at the end (it never touches another). A tenant and an
admin key are made with manage.py. Each round times every target in turn (A, B, C, A, B, C …,
the order rotated each round): one keep-alive client sending requests one after another (the
server process's CPU time per request read from /proc beside it), then
wrk (when installed; else threads) with several connections. Printed: p50, p90, the spread of
the rounds' p50s, and each target's ratio to the bare view. Last, `uvicorn --workers 2` with
and without the protocol that sets TCP_NODELAY (`--no-nodelay` leaves it out everywhere).
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx2

ROOT = Path(__file__).resolve().parents[1]
NODELAY = ["--http", "agentflow_site.serving:HTTPProtocol"]
FLAGS = ["--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"]
# Behind the TLS proxy production has: without it DEBUG=false redirects /api to https.
PROXIED = {"X-Forwarded-Proto": "https"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _database(postgres: str | None, data_dir: Path) -> Iterator[str]:
    """SQLite in `data_dir`, or a fresh PostgreSQL database that only this run knows of."""
    if not postgres:
        yield ""
        return
    import psycopg

    name = f"agentflow_bench_{secrets.token_hex(6)}"
    admin = urlunsplit(urlsplit(postgres)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(postgres)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(data_dir: Path, database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "AGENTFLOW_DATA_DIR": str(data_dir),
        "ALLOWED_HOSTS": "127.0.0.1",
        # Counted as ever, never refused; a window of one second keeps the list of request times the
        # throttle stores per key about as long as the default 600/min does.
        "API_THROTTLE_RATE": "999999/s",
        "CACHE_KEY_PREFIX": f"bench-{secrets.token_hex(4)}",
        "PYTHONPATH": str(ROOT),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@contextmanager
def _server(
    app: str, env: dict[str, str], logs: Path, probe: str, *extra: str
) -> Iterator[tuple[str, int]]:
    port = _free_port()
    log = (logs / f"{app.split(':')[0]}-{port}.log").open("wb")
    cmd = [sys.executable, "-m", "uvicorn", app, "--port", str(port), *FLAGS, *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(url + probe, timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{app} did not start; see {log.name}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux): the server's own cost per request,
    which a busy machine distorts far less than latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sequential(url: str, headers: dict[str, str], requests: int) -> list[float]:
    """Milliseconds per request, one after another on one keep-alive connection."""
    times = []
    with httpx2.Client(headers=headers, timeout=10) as client:
        client.get(url).raise_for_status()  # the connection, opened before timing
        for _ in range(requests):
            start = time.perf_counter()
            client.get(url).raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    return times


_WRK_LATENCY = re.compile(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _concurrent(url: str, headers: dict[str, str], connections: int, seconds: int) -> float:
    """Requests per second with `connections` keep-alive connections at once."""
    if shutil.which("wrk"):
        args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
        args += [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out:
            raise SystemExit(f"{url} answered errors under load:\n{out}")
        match = _WRK_RPS.search(out)
        assert match, out
        return float(match[1])
    return _threaded(url, headers, connections, seconds)


def _threaded(url: str, headers: dict[str, str], connections: int, seconds: int) -> float:
    counts = [0] * connections
    deadline = time.perf_counter() + seconds

    def run(i: int) -> None:
        with httpx2.Client(headers=headers, timeout=10) as client:
            while time.perf_counter() < deadline:
                client.get(url).raise_for_status()
                counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _compare(targets: dict[str, tuple[str, dict[str, str], int]], args: argparse.Namespace) -> None:
    names = list(targets)
    latencies: dict[str, list[float]] = {n: [] for n in names}
    round_p50s: dict[str, list[float]] = {n: [] for n in names}
    rps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            url, headers, pid = targets[name]
            before = _cpu_seconds(pid)
            times = _sequential(url, headers, args.requests)
            cpu[name].append((_cpu_seconds(pid) - before) * 1000 / args.requests)
            latencies[name] += times
            round_p50s[name].append(statistics.median(times))
        for name in order:
            url, headers, _pid = targets[name]
            rps[name].append(_concurrent(url, headers, args.connections, args.seconds))
    bare = names[0]
    base_p50 = statistics.median(latencies[bare])
    base_rps = statistics.median(rps[bare])
    base_cpu = statistics.median(cpu[bare])
    print(
        f"\none keep-alive client, {args.rounds} rounds x {args.requests} requests "
        f"(interleaved); then {args.connections} connections for {args.seconds} s "
        f"({'wrk' if shutil.which('wrk') else 'threads'})"
    )
    print(
        f"{'target':<14}{'p50 ms':>8}{'p90 ms':>8}{'round p50 min-max':>20}{'x bare':>8}"
        f"{'rps p50':>10}{'rps min-max':>16}{'x bare':>8}{'server cpu ms':>15}{'x bare':>8}"
    )
    for name in names:
        p50, spread = statistics.median(latencies[name]), round_p50s[name]
        rate, cpu_ms = statistics.median(rps[name]), statistics.median(cpu[name])
        print(
            f"{name:<14}{p50:>8.2f}{_pct(latencies[name], 0.9):>8.2f}"
            f"{f'{min(spread):.2f}-{max(spread):.2f}':>20}{p50 / base_p50:>8.2f}"
            f"{rate:>10.0f}{f'{min(rps[name]):.0f}-{max(rps[name]):.0f}':>16}"
            f"{base_rps / rate:>8.2f}{cpu_ms:>15.2f}{cpu_ms / base_cpu:>8.2f}"
        )


def _workers_nodelay(env: dict[str, str], logs: Path, args: argparse.Namespace) -> None:
    """`--workers 2`: uvicorn binds the socket itself, and asyncio leaves Nagle on."""
    rows: dict[str, list[float]] = {"without": [], "with": []}
    app, two = "agentflow_site.asgi:application", ("--workers", "2")
    with (
        _server(app, env, logs, "/health/live", *two) as (plain, _),
        _server(app, env, logs, "/health/live", *two, *NODELAY) as (fixed, _),
    ):
        for _ in range(args.rounds):
            rows["without"] += _sequential(plain + "/health/live", {}, args.requests // 4)
            rows["with"] += _sequential(fixed + "/health/live", {}, args.requests // 4)
    print("\nuvicorn --workers 2, GET /health/live, one keep-alive client (interleaved)")
    for name, times in rows.items():
        print(
            f"  {name + ' agentflow_site.serving:HTTPProtocol':<48} p50 "
            f"{statistics.median(times):6.2f} ms  p90 {_pct(times, 0.9):6.2f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="per target per round")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=2, help="of load per target per round")
    parser.add_argument("--postgres", help="a server URL; the bench creates its own database")
    parser.add_argument("--redis", help="REDIS_URL for AgentFlow's cache (default: database)")
    parser.add_argument("--no-nodelay", action="store_true", help="leave the protocol out")
    parser.add_argument("--skip-workers", action="store_true", help="no --workers 2 run")
    args = parser.parse_args()
    flags = [] if args.no_nodelay else NODELAY
    with tempfile.TemporaryDirectory(prefix="agentflow-bench-http-") as tmp:
        data_dir, logs = Path(tmp), Path(tmp)
        with _database(args.postgres, data_dir) as database_url:
            env = _env(data_dir, database_url, args.redis)
            _manage(env, "migrate", "--no-input", "-v0")
            _manage(env, "createtenant", "bench")
            key = _manage(env, "createapikey", "--tenant", "bench", "--role", "admin")
            print(f"database: {'PostgreSQL ' + database_url if database_url else 'SQLite'}; ")
            print(f"cache: {'Redis' if args.redis else 'database'}; flags: {FLAGS + flags}")
            app = "agentflow_site.asgi:application"
            with (
                _server("bench._bare_site:application", env, logs, "/bare", *flags) as (bare, p1),
                _server(app, env, logs, "/health/live", *flags) as (site, p2),
            ):
                targets = {
                    "bare view": (bare + "/bare", {}, p1),
                    "/health/live": (site + "/health/live", {}, p2),
                    "/api/v1/me": (site + "/api/v1/me", {"X-API-Key": key, **PROXIED}, p2),
                }
                _compare(targets, args)
            if not args.skip_workers:
                _workers_nodelay(env, logs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
