"""A real AgentFlow on the test database: uvicorn and run workers as processes, started
and killed at will, called over HTTP as a user would."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]


def stack_env(tmp_path: Path, *, port: int | None = None, **extra: str) -> dict[str, str]:
    """The environment of a Stack on the test database (through `port`, a proxy, when given):
    PostgreSQL is required, a failure under CI and a skip elsewhere."""
    import pytest
    from django.db import connection

    from tests.conftest import IN_CI

    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("this test needs PostgreSQL (DATABASE_URL) under CI")
        pytest.skip("this test needs PostgreSQL")
    db = connection.settings_dict
    where = f"127.0.0.1:{port}" if port else f"{db['HOST']}:{db['PORT']}"
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{where}/{db['NAME']}",
        "AGENTFLOW_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Stack:
    """uvicorn and run workers on the test database, started and killed at will."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def worker(self) -> subprocess.Popen[bytes]:
        return self._start("worker", "manage.py", "runworker")

    def qcluster(self) -> subprocess.Popen[bytes]:
        """django-q2's cluster: schedules' ticks, completion webhooks, the minute sweeps."""
        return self._start("qcluster", "manage.py", "qcluster")

    def web(self) -> None:
        """uvicorn, answering. Its port (free when chosen) may be taken by another process
        before uvicorn binds it, another test's server say: then it exits, and starts again on
        a new port."""
        for _ in range(3):
            proc = self._start(
                "web",
                "-m",
                "uvicorn",
                "agentflow_site.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            )
            # a loaded machine: a generous wait
            wait_for(partial(self._settled, proc), 90, "the web server")
            if proc.poll() is None:
                return
            self.port = free_port()
        raise AssertionError(f"the web server would not start (see {self.logs}/web-*.log)")

    def _settled(self, proc: subprocess.Popen[bytes]) -> bool:
        return proc.poll() is not None or self._answers()

    def _answers(self) -> bool:
        try:
            return httpx2.get(f"{self.url}/health/live", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 2  # a graceful stop is not what these tests are about
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
