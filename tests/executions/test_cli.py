"""`manage.py run_workflow` as a person at a terminal meets it: errors that say what to do, no
log lines in its output unless asked, a queued run with no worker that says so."""

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from executions.management.commands.run_workflow import _Lines
from executions.models import Execution, Status
from executions.services import execution_cancel
from tenants.models import Tenant

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "cli",
    "start_node": "in",
    "nodes": [
        {"id": "in", "type": "input"},
        {
            "id": "out",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "hi {{ user_input }}"},
        },
    ],
    "edges": [{"from": "in", "to": "out"}],
}


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "cli.json"
    path.write_text(json.dumps(SPEC))
    return path


@pytest.mark.django_db
def test_an_unknown_tenant_is_an_error_in_both_modes(spec_file: Path) -> None:
    for extra in ([], ["--enqueue"]):
        with pytest.raises(CommandError, match="There is no tenant 'nope'"):
            call_command("run_workflow", str(spec_file), "--tenant", "nope", *extra)
    with pytest.raises(CommandError, match="--enqueue needs --tenant SLUG"):
        call_command("run_workflow", str(spec_file), "--enqueue")


def _cli(spec_file: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AGENTFLOW_DATA_DIR": str(tmp_path / "var"),  # SQLite of its own: no database is needed
    }
    return subprocess.run(
        [sys.executable, "manage.py", "run_workflow", str(spec_file), "--input", "bob", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_the_cli_prints_its_lines_and_no_log_lines_unless_asked(
    spec_file: Path, tmp_path: Path
) -> None:
    quiet = _cli(spec_file, tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    said = quiet.stdout + quiet.stderr
    assert "✓ out finished" in said and '"final_output": "hi bob"' in said
    assert '"event": "node_finished"' not in said and '"logger"' not in said
    verbose = _cli(spec_file, tmp_path, "-v", "2")
    assert "node_finished" in verbose.stdout + verbose.stderr  # asked for: the run's log lines


def test_a_line_after_streamed_text_starts_on_its_own_line() -> None:
    out = io.StringIO()

    class Out:
        def write(self, text: str, ending: str = "\n") -> None:
            out.write(text + ending)

        def flush(self) -> None:
            pass

    lines = _Lines(Out())
    lines("▶ draft [llm] started")
    lines.stream("Hello")
    lines.stream(" world")
    lines("✓ draft finished in 12 ms")
    assert out.getvalue() == "▶ draft [llm] started\nHello world\n✓ draft finished in 12 ms\n"


@pytest.mark.django_db(transaction=True)
def test_a_queued_run_with_no_worker_says_so_and_keeps_following(
    spec_file: Path, tenant: Tenant
) -> None:
    out = io.StringIO()
    failed: list[BaseException] = []

    def follow() -> None:
        try:
            call_command(
                "run_workflow", str(spec_file), "--enqueue", "--tenant", tenant.slug, stdout=out
            )
        except BaseException as exc:  # SystemExit(1): the run was cancelled, not succeeded
            failed.append(exc)
        finally:
            connection.close()  # this thread's own connection

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    deadline = time.monotonic() + 60
    while "no run worker is running" not in out.getvalue():
        assert time.monotonic() < deadline, (out.getvalue(), failed)
        time.sleep(0.2)
    assert "make worker, or manage.py runworker" in out.getvalue()
    execution = Execution.objects.get(tenant=tenant)
    assert execution.status == Status.QUEUED
    execution_cancel(execution=execution, actor="test")
    follower.join(timeout=60)
    assert not follower.is_alive()
    assert "status: cancelled" in out.getvalue()
    assert len(failed) == 1 and isinstance(failed[0], SystemExit)
