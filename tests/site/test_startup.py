"""`make run`'s start-up path on the embedded defaults, as a new user meets it.

A copy of the project starts with no environment variables at all (SQLite, ORM broker, database
cache); the printed curl line must answer 200 and /health must see the worker.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".venv", ".tools", "var", ".git", "__pycache__", "*_cache", ".env")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, key: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (serve.sh puts its children in their own process groups)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a person would; if it does not stop within a minute, kill what is left (so a
    failing run leaves nothing behind) and fail."""
    os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        signals = _signal_state(server.pid)
        for pid in [server.pid, *_descendants(server.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.wait(timeout=10)
        raise AssertionError(f"Ctrl-C did not stop serve.sh within 60 s ({signals})") from None


def _signal_state(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return "; ".join(line for line in status if line.startswith(("Sig", "Shd", "State")))


def _plain_signals() -> None:
    """The child starts as a terminal's would: no signal blocked or ignored (a test process's
    threads may have either, and both would be inherited through exec)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def,unused-ignore]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _serve(project: Path, port: int | str, log: Any, home: Path) -> subprocess.Popen[bytes]:
    """`scripts/serve.sh PORT` as `make run` starts it: no variables but PATH and HOME."""
    return subprocess.Popen(
        ["bash", "scripts/serve.sh", str(port)],
        cwd=project,
        env={"PATH": os.environ["PATH"], "HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_plain_signals,
    )


def _printed(log: Any) -> str:
    log.seek(0)
    return str(log.read())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "agentflow"
    shutil.copytree(ROOT, copy, ignore=IGNORE)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


@pytest.mark.slow
def test_it_starts_with_no_variables_set_and_the_printed_curl_line_works(
    project: Path, tmp_path: Path
) -> None:
    port = _free_port()
    log = (tmp_path / "serve.log").open("w+")
    server = _serve(project, port, log, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:

        def printed_curl() -> re.Match[str] | None:
            return re.search(r"curl -H 'X-API-Key: (\S+)' (\S+)", _printed(log))

        match = _wait_for(printed_curl, 120, "the demo key to be printed")
        key, url = match[1], match[2]
        # the key and the banner come together, once this start's own server answers
        assert "==> AgentFlow on" in _printed(log)
        assert _get(url, key)[0] == 200
        assert url == f"{base}/api/v1/me"

        def healthy() -> dict | None:
            try:
                status, body = _get(f"{base}/health")
            except OSError:
                return None
            data = json.loads(body)
            return data if status == 200 and data["status"] == "ok" else None

        health = _wait_for(healthy, 120, "/health to report the worker")
        assert health["dependencies"]["database"]["vendor"] == "sqlite"
        assert health["dependencies"]["redis"] == {"status": "not configured"}
        assert health["dependencies"]["workers"]["processes"] == 1

        status, body = _get(url, key)
        assert status == 200
        assert json.loads(body)["tenant"] == "demo"
        assert json.loads(body)["role"] == "admin"
        assert _get(url, "garbage")[0] == 401

        status, html = _get(f"{base}/api/docs/")
        assert status == 200
        asset = re.search(rb'src="(/static/drf_spectacular_sidecar/[^"]+\.js)"', html)
        assert asset is not None and _get(base + asset[1].decode())[0] == 200
        assert (project / "var" / "db.sqlite3").exists()
    finally:
        _stop(server)
    output = _printed(log)
    assert server.returncode == 0, output[-2000:]  # Ctrl-C is a clean stop, not "Error 130"
    assert "==> AgentFlow stopped." in output
    banner_end = output.index("Django admin:")
    assert key.partition(".")[2] not in output[banner_end:]  # printed once, never logged
    assert "Traceback" not in output
    assert not re.search(r'^\{"', output, re.M)  # log lines read as text in a terminal, not JSON


@pytest.mark.slow
def test_a_taken_port_is_refused_before_anything_and_the_demo_key_is_kept(
    project: Path, tmp_path: Path
) -> None:
    port = _free_port()
    first_log = (tmp_path / "first.log").open("w+")
    first = _serve(project, port, first_log, tmp_path)
    try:
        match = _wait_for(
            lambda: re.search(r"Admin API key: (\S+)", _printed(first_log)), 120, "the demo key"
        )
        key = match[1]
        kept = project / "var" / "demo-credentials.json"
        assert kept.stat().st_mode & 0o777 == 0o600
        assert json.loads(kept.read_text())["key"] == key

        again = subprocess.run(
            ["bash", "scripts/serve.sh", str(port)],
            cwd=project,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode != 0
        said = again.stdout + again.stderr
        assert f"Port {port} on 127.0.0.1 is taken" in said
        assert f"PORT={port + 1} make run" in said
        assert "Traceback" not in said and "Admin API key" not in said
        # the running server's key was not touched
        assert _get(f"http://127.0.0.1:{port}/api/v1/me", key)[0] == 200
    finally:
        _stop(first)
    assert first.returncode == 0

    bad = subprocess.run(
        ["bash", "scripts/serve.sh", "eighty"], cwd=project, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "PORT must be a number" in bad.stderr

    second_log = (tmp_path / "second.log").open("w+")
    second = _serve(project, port, second_log, tmp_path)
    try:
        _wait_for(lambda: "==> AgentFlow on" in _printed(second_log), 120, "the second start")
        assert f"Admin API key: {key}   (kept from the last start" in _printed(second_log)
        assert _get(f"http://127.0.0.1:{port}/api/v1/me", key)[0] == 200
    finally:
        _stop(second)
