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


@pytest.mark.slow
def test_it_starts_with_no_variables_set_and_the_printed_curl_line_works(tmp_path: Path) -> None:
    project = tmp_path / "agentflow"
    shutil.copytree(ROOT, project, ignore=IGNORE)
    (project / ".venv").symlink_to(ROOT / ".venv")
    port = _free_port()
    log = (tmp_path / "serve.log").open("w+")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    server = subprocess.Popen(
        ["bash", "scripts/serve.sh", str(port)],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_plain_signals,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def printed_curl() -> re.Match[str] | None:
            log.seek(0)
            return re.search(r"curl -H 'X-API-Key: (\S+)' (\S+)", log.read())

        match = _wait_for(printed_curl, 120, "the demo key to be printed")
        key, url = match[1], match[2]

        def banner() -> bool:
            log.seek(0)
            return "==> AgentFlow on" in log.read()

        _wait_for(banner, 120, "the banner saying it is up")
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
    log.seek(0)
    output = log.read()
    banner_end = output.index("Django admin:")
    assert key.partition(".")[2] not in output[banner_end:]  # printed once, never logged
    assert "Traceback" not in output
