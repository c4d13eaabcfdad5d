"""Open event streams do not take what other requests need: on a web process whose database pool
holds 3 connections, 12 streams stay open and other requests are answered."""

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from django.utils import timezone

from executions.models import Execution
from tests.conftest import IssuedKey, issue_key
from tests.stack import Stack, stack_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
STREAMS = 12
SPEC = {"name": "x", "start_node": "input", "nodes": [{"id": "input", "type": "input"}]}


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
