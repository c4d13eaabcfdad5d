"""Start-up configuration, checked the way an operator meets it: by running manage.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k" * 20 + "-not-a-real-secret-but-long-enough-for-the-deploy-check"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_SECRET_KEY")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_default_secret_key_is_refused_with_debug_off() -> None:
    result = manage("check", DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY=" in result.stderr and "must be a random value" in result.stderr


def test_check_deploy_passes_with_debug_off() -> None:
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        DJANGO_SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="agentflow.example.com",
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://u@127.0.0.1:5432/x"),
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_bad_throttle_rate_is_a_system_check_error() -> None:
    result = manage("check", API_THROTTLE_RATE="lots")
    assert result.returncode != 0
    assert "agentflow.E001" in result.stderr


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_runtime_never_imports_django_and_the_code_is_lint_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
