"""examples/client_demo.py, run as a user would against a live server: it validates, stores,
runs at once and in the background (printing the events live) and reads the execution."""

import os
import subprocess
import sys

import pytest

from tests.client.conftest import PRICES
from tests.conftest import IssuedKey
from tests.stack import ROOT, Stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def demo(server: Stack, key: IssuedKey) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTFLOW_URL": server.url, "AGENTFLOW_API_KEY": key.secret}
    env.pop("PYTHONPATH", None)  # the script finds the client in the repository by itself
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client_demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_client_demo_runs_the_offline_demo(server: Stack, key: IssuedKey) -> None:
    first = demo(server, key)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert "validate: valid=True, 0 errors" in lines
    (stored,) = [line for line in lines if line.startswith("stored: wf_")]
    assert any(line.startswith("run at once: success") and PRICES in line for line in lines)
    events = [line.split(":", 1)[1].split() for line in lines if line.startswith("  event ")]
    assert events[-1] == ["end", "succeeded"]
    assert ["node_finished", "answer"] in events
    assert any(line.startswith("  answer ") and "succeeded" in line for line in lines)

    again = demo(server, key)  # the stored workflow is found and updated, not stored twice
    assert again.returncode == 0, again.stdout + again.stderr
    assert stored in again.stdout.splitlines()


def test_the_client_demo_says_what_a_wrong_key_got(server: Stack, key: IssuedKey) -> None:
    wrong = demo(server, IssuedKey(key.row, key.secret + "x"))
    assert wrong.returncode == 1
    assert "AgentFlow answered 401" in wrong.stderr
