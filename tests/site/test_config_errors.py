"""A bad setting is one clear line naming it, its value (masked when secret), what is wrong and
an example, from `manage.py` and from the web server alike; never a traceback."""

import os
import re
import subprocess
import sys
from pathlib import Path

import environ
import pytest

from agentflow_site.config import CheckedEnv, shown

ROOT = Path(__file__).resolve().parents[2]
# Variables of the caller's environment that would change what a start does.
OURS = re.compile(r"^(DEBUG|DJANGO_|DATABASE_|REDIS_URL|AGENTFLOW_|Q_|LOG_|SENTRY_|OTEL_)")


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not OURS.match(k)}
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**clean, "AGENTFLOW_DATA_DIR": str(tmp_path / "var"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


CASES = [
    ({"Q_WORKERS": "two"}, "Q_WORKERS='two': is not a whole number. Example: Q_WORKERS=2"),
    (
        {"AGENTFLOW_PROVIDER_BASE_URLS": "notjson"},
        "AGENTFLOW_PROVIDER_BASE_URLS='notjson': is not JSON. Example: "
        'AGENTFLOW_PROVIDER_BASE_URLS={"openai": "https://gateway.internal/v1"}',
    ),
    (
        {"DATABASE_URL": "nonsense"},
        "DATABASE_URL='nonsense': is not a database URL AgentFlow knows",
    ),
    ({"REDIS_URL": "nonsense"}, "REDIS_URL='nonsense': is not a Redis URL"),
    ({"DEBUG": "flase"}, "DEBUG='flase': is neither true nor false. Example: DEBUG=false"),
    (
        {"DEBUG": "false", "DJANGO_SECRET_KEY": "hunter2"},
        "DJANGO_SECRET_KEY='hu…' (masked, 7 characters): must be a random value of 50+",
    ),
    ({"AGENTFLOW_MAX_STATE_BYTES": "0"}, "AGENTFLOW_MAX_STATE_BYTES='0': must be a positive"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml': must be json or console. Example: LOG_FORMAT=json"),
    (
        {"AGENTFLOW_TRUSTED_HOSTS": "10.0.0.5:http"},
        "AGENTFLOW_TRUSTED_HOSTS='10.0.0.5:http'",
    ),
]


@pytest.mark.parametrize(("env", "said"), CASES, ids=[next(iter(e)) for e, _ in CASES])
def test_a_bad_variable_is_one_line_naming_it_from_manage_py(
    env: dict[str, str], said: str, tmp_path: Path
) -> None:
    done = run([sys.executable, "manage.py", "migrate", "--no-input"], tmp_path, **env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "agentflow.E100" in line]
    assert len(lines) == 1, done.stderr
    assert said in lines[0]
    assert "Applying" not in done.stdout  # nothing ran: no migration applied
    assert "hunter2" not in done.stderr


def test_every_bad_variable_is_reported_at_once(tmp_path: Path) -> None:
    done = run(
        [sys.executable, "manage.py", "check"],
        tmp_path,
        Q_WORKERS="two",
        DEBUG="maybe",
        REDIS_URL="nonsense",
    )
    assert done.returncode != 0
    assert done.stderr.count("agentflow.E100") >= 3


def test_the_web_server_stops_at_start_with_the_same_lines(tmp_path: Path) -> None:
    done = run(
        [sys.executable, "-m", "uvicorn", "agentflow_site.asgi:application", "--port", "0"],
        tmp_path,
        Q_WORKERS="two",
        DATABASE_URL="postgres://agentflow:s3cret@db:5432/x?bad=1",
        AGENTFLOW_METRICS_TOKEN="short",
    )
    assert done.returncode == 2
    assert "AgentFlow cannot start: 2 setting(s) are wrong." in done.stderr
    assert "Q_WORKERS='two': is not a whole number" in done.stderr
    assert "AGENTFLOW_METRICS_TOKEN='sh…' (masked, 5 characters)" in done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr


def test_a_redis_that_does_not_answer_is_a_warning_at_start(tmp_path: Path) -> None:
    done = run([sys.executable, "manage.py", "check"], tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    assert done.returncode == 0  # the API runs degraded without Redis, by design
    assert (
        "(agentflow.W002) REDIS_URL: Redis at redis://127.0.0.1:1/0 did not answer" in done.stderr
    )


def test_the_example_env_file_is_safe_to_copy_for_development(tmp_path: Path) -> None:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    assert "DEBUG" not in values and "DATABASE_URL" not in values  # production values commented
    done = run([sys.executable, "manage.py", "migrate", "--no-input"], tmp_path, **values)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "var" / "db.sqlite3").exists()


def test_values_are_shown_masked_when_secret() -> None:
    assert shown("DJANGO_SECRET_KEY", "abcdefgh") == "'ab…' (masked, 8 characters)"
    assert shown("AGENTFLOW_METRICS_TOKEN", "") == "''"
    assert shown("DATABASE_URL", "postgres://u:pw@h/db") == "'postgres://u:***@h/db'"
    assert shown("DATABASE_URL", "postgres//u:s3cret@h/db") == "'postgres//u:***@h/db'"
    assert shown("Q_WORKERS", "two") == "'two'"


def test_bool_takes_true_and_false_spellings_only() -> None:
    env = CheckedEnv()
    env.ENVIRON = {"A": "yes", "B": "OFF", "C": "flase", "D": ""}
    assert (env.bool("A", default=False), env.bool("B", default=True)) == (True, False)
    assert env.bool("D", default=True) is True
    assert env.bool("C", default=True) is True and env.refused("C")
    assert [p.name for p in env.problems] == ["C"]
    assert isinstance(env, environ.Env)


def test_a_python_named_in_PYTHON_that_is_too_old_is_said_so(tmp_path: Path) -> None:
    old = tmp_path / "python3.11"  # answers as a Python 3.11 would
    old.write_text(
        '#!/bin/sh\ncase "$*" in *version_info*) exit 1;; *python_version*) echo 3.11.2;; esac\n'
    )
    old.chmod(0o755)
    done = run(["bash", "scripts/find-python.sh"], tmp_path, PYTHON=str(old))
    assert done.returncode == 1 and done.stdout == ""
    assert f"PYTHON={old} is Python 3.11.2; AgentFlow needs 3.12 or newer" in done.stderr
    missing = run(["bash", "scripts/find-python.sh"], tmp_path, PYTHON="no-such-python")
    assert missing.returncode == 1 and "PYTHON=no-such-python: no such program" in missing.stderr
    found = run(["bash", "scripts/find-python.sh"], tmp_path, PYTHON=sys.executable)
    assert found.returncode == 0 and found.stdout.strip() == sys.executable
