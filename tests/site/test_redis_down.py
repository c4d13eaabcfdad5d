"""With Redis down the API keeps answering: the throttle's and the cache's reads and writes fail
open (and are logged), on a real server started with a REDIS_URL nothing listens on."""

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import IssuedKey, issue_key
from tests.stack import Stack, stack_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    nothing = "redis://127.0.0.1:1/0"  # nothing listens there
    stack = Stack(stack_env(tmp_path, REDIS_URL=nothing), tmp_path)
    yield stack
    stack.stop()


def test_the_api_answers_while_redis_is_down(stack: Stack, tenant) -> None:
    key: IssuedKey = issue_key(tenant, "viewer")
    stack.web()
    headers = {"X-API-Key": key.secret}
    answers = [httpx2.get(f"{stack.url}/api/v1/me", headers=headers, timeout=30) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200], answers[-1].text
    assert answers[0].json()["tenant"] == tenant.slug
    answer = httpx2.get(f"{stack.url}/health", timeout=30)
    health = answer.json()
    assert health["dependencies"]["redis"]["status"] == "down"  # and said so
    assert (answer.status_code, health["status"]) == (200, "degraded")  # still served
    logs = "".join(p.read_text(errors="replace") for p in stack.logs.glob("web-*.log"))
    assert "Error" in logs or "error" in logs  # the ignored failures are logged
