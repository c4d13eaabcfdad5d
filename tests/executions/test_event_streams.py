"""Open event streams take neither a thread nor a database connection each while they wait.

On a real web process (uvicorn) and run worker, 50 clients follow 5 runs of 5 slow provider
calls: the web process's threads (/proc/<pid>/task) and its PostgreSQL connections
(pg_stat_activity, by the client ports of its sockets) are measured with 5 streams open, with 50,
and throughout the runs; each stream gets every event of its run once, in order; `GET
/api/v1/me` is answered all along. A second test keeps 12 streams open on a pool of 3."""

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django.db import connection, transaction
from django.utils import timezone

from executions.events import READERS
from executions.models import Execution, ExecutionEvent
from executions.services import execution_create
from executions.tasks import enqueue_run
from tests.conftest import IssuedKey, issue_key
from tests.executions.test_background import CHAIN
from tests.fakes.providers import FakeOpenAIServer
from tests.stack import Stack, stack_env, wait_for
from workflows.services import workflow_validate

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
STREAMS = 12
SPEC = {"name": "x", "start_node": "input", "nodes": [{"id": "input", "type": "input"}]}
RUNS, FEW, MANY = 5, 5, 50
SLACK = 4
"""Threads a web process may start for other reasons while it is measured (the loop's own
executor, a probe): far fewer than the 45 more streams."""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(stack_env(tmp_path, DATABASE_POOL_MAX_SIZE="3"), tmp_path)
    yield stack
    stack.stop()


def test_many_open_streams_leave_the_pool_to_other_requests(stack: Stack, tenant) -> None:
    key: IssuedKey = issue_key(tenant, "viewer")
    run = Execution.objects.create(  # running, and nothing will end it: its streams stay open
        tenant=tenant,
        spec=SPEC,
        spec_digest="",
        workflow_name="x",
        mode="async",
        status="running",
        heartbeat_at=timezone.now(),
        worker="elsewhere",
    )
    stack.web()
    headers = {"X-API-Key": key.secret}
    opened: list[int] = []
    stop = threading.Event()

    def follow() -> None:
        url = f"{stack.url}/api/v1/executions/{run.pk}/events"
        try:
            with httpx2.stream("GET", url, headers=headers, timeout=60) as response:
                opened.append(response.status_code)
                for _ in response.iter_lines():
                    if stop.is_set():
                        return
        except httpx2.HTTPError:
            if not stop.is_set():  # cut off before the test ended
                opened.append(-1)

    threads = [threading.Thread(target=follow, daemon=True) for _ in range(STREAMS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(opened) == STREAMS, 60, f"{STREAMS} streams to open")
        assert opened == [200] * STREAMS
        answers = [
            httpx2.get(f"{stack.url}/api/v1/me", headers=headers, timeout=20) for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200]
    finally:
        stop.set()


# --- 50 streams on 5 runs --------------------------------------------------------------------


class Follower:
    """One client following a run's events over SSE, on a thread of its own."""

    def __init__(self, stack: Stack, key: IssuedKey, execution_id: str) -> None:
        self.url = f"{stack.url}/api/v1/executions/{execution_id}/events"
        self.headers = {"X-API-Key": key.secret}
        self.execution_id = execution_id
        self.status: int | None = None
        self.ids: list[int] = []
        self.kinds: list[str] = []
        self.error: str | None = None
        self.done = threading.Event()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        try:
            with httpx2.stream("GET", self.url, headers=self.headers, timeout=300) as response:
                self.status = response.status_code
                self._read(response.iter_lines())
        except Exception as exc:  # reported by the test, with the others
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def _read(self, lines: Iterator[str]) -> None:
        block: dict[str, str] = {}
        for line in lines:
            if line:
                name, _, value = line.partition(": ")
                block[name] = value
                continue
            if "event" in block:
                self.ids.append(int(block["id"]))
                self.kinds.append(block["event"])
                json.loads(block["data"])
                if block["event"] == "end":
                    return
            block = {}


def _opened(stack: Stack, key: IssuedKey, execution_id: str) -> Follower:
    """A stream, once the server has answered it (one at a time, as clients come and go: not
    a burst of requests, which a pool meets with more connections for a while)."""
    follower = Follower(stack, key, execution_id)
    wait_for(lambda: follower.status or follower.done.is_set(), 60, "a stream to open")
    return follower


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def _database_connections(pid: int) -> int:
    """The process's connections to the test database, as PostgreSQL lists them: the client
    ports of its TCP sockets (/proc/net/tcp by inode) found in pg_stat_activity."""
    inodes = _socket_inodes(pid)
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND client_port = ANY(%s)",
            [connection.settings_dict["NAME"], ports],
        )
        return int(cursor.fetchone()[0])


class Sampler:
    """The highest thread and connection counts of a process, sampled until stopped."""

    def __init__(self, pid: int, until: Callable[[], bool] = lambda: False) -> None:
        self.pid, self.threads, self.connections = pid, 0, 0
        self.until = until
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            while not self._stop.wait(0.25) and os.path.exists(f"/proc/{self.pid}"):
                if self.until():
                    break
                self.threads = max(self.threads, _threads(self.pid))
                self.connections = max(self.connections, _database_connections(self.pid))
        finally:
            connection.close()  # this thread's own: the test database is dropped after

    def stop(self) -> "Sampler":
        self._stop.set()
        self._thread.join(10)
        return self


def _measure(pid: int, seconds: float = 2.0) -> tuple[int, int]:
    """The most threads and connections the process has over a few seconds."""
    sampler = Sampler(pid)
    time.sleep(seconds)
    sampler.stop()
    return sampler.threads, sampler.connections


@pytest.fixture
def long_runs_stack(tmp_path: Path, openai_server: FakeOpenAIServer) -> Iterator[Stack]:
    env = stack_env(
        tmp_path,
        AGENTFLOW_PROVIDER_BASE_URLS=f'{{"openai": "{openai_server.base_url}"}}',
        OPENAI_API_KEY="sk-test-streams-0123456789",
    )
    stack = Stack(env, tmp_path)
    yield stack
    stack.stop()


def _queue_runs(tenant: Any) -> list[str]:
    validated = workflow_validate(spec=CHAIN, tenant=tenant)
    ids = []
    for i in range(RUNS):
        with transaction.atomic():
            state = {"user_input": f"run-{i}"}
            run = execution_create(
                tenant=tenant, validated=validated, mode="async", initial_state=state
            )
            enqueue_run(run.id)
        ids.append(run.id)
    return ids


def test_fifty_streams_hold_no_thread_or_connection_each_and_lose_no_event(
    long_runs_stack: Stack, openai_server: FakeOpenAIServer, tenant
) -> None:
    stack = long_runs_stack
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    key = issue_key(tenant, "viewer")
    openai_server.script(times=1000, delay=1.0)
    ids = _queue_runs(tenant)  # queued, no worker yet: their streams open and wait
    stack.web()
    pid = stack.procs[0].pid
    me = f"{stack.url}/api/v1/me"
    headers = {"X-API-Key": key.secret}
    assert httpx2.get(me, headers=headers, timeout=30).status_code == 200

    followers = [_opened(stack, key, ids[i % RUNS]) for i in range(FEW)]
    few = _measure(pid)
    followers += [_opened(stack, key, ids[i % RUNS]) for i in range(FEW, MANY)]
    many = _measure(pid)
    assert httpx2.get(me, headers=headers, timeout=30).status_code == 200

    # Sampled until the first run's `end` reaches its client: the server then closes that
    # stream, and closing a response (any response) takes a thread for a moment.
    during = Sampler(pid, until=lambda: any("end" in f.kinds for f in followers))
    stack.worker()
    answers = []
    deadline = time.monotonic() + 180
    while not all(f.done.is_set() for f in followers) and time.monotonic() < deadline:
        answers.append(httpx2.get(me, headers=headers, timeout=30).status_code)
        time.sleep(0.5)
    during.stop()
    assert all(f.done.is_set() for f in followers), "streams still open after 180 s"
    wait_for(lambda: _measure(pid, 0.5)[0] <= few[0] + SLACK, 30, "the threads to end")
    print(f"threads/connections: {FEW} streams {few}, {MANY} streams {many}, ", end="")
    print(f"while the runs went on {(during.threads, during.connections)}")

    assert [f.error for f in followers if f.error] == []
    assert {f.status for f in followers} == {200}
    assert set(answers) == {200}
    for follower in followers:
        recorded = ExecutionEvent.objects.filter(execution_id=follower.execution_id)
        every = list(recorded.order_by("id").values_list("id", flat=True))
        assert follower.ids == every  # each event once, in order: none lost, none repeated
        assert follower.kinds[-1] == "end"
    assert set(Execution.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "succeeded"
    }
    assert many[0] <= few[0] + SLACK  # 45 more streams: no thread more each
    assert many[1] <= few[1] + 1  # nor a connection more each
    assert during.threads <= few[0] + SLACK + READERS  # while 50 streams pass events on
    assert during.connections <= READERS + 3  # the readers', and the requests' in between
