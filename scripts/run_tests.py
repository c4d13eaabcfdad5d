"""Run the whole suite on PostgreSQL and Redis (the services this machine runs).

DATABASE_URL and REDIS_URL default to the local services. Under CI=true a service that does not
answer fails the run; elsewhere the suite falls back to SQLite / no Redis and says so loudly.
The browser tests' Chromium and the deployment tests' nginx are installed when missing
(scripts/ensure_packages.py); under CI=true one that cannot be installed fails the run.
"""

import os
import socket
import sys
from urllib.parse import urlsplit

from ensure_packages import ensure_chromium, ensure_nginx  # beside this script

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=3):
            return True
    except OSError:
        return False


def main() -> int:
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    missing = []
    for name, default in (("DATABASE_URL", DEFAULT_DATABASE_URL), ("REDIS_URL", DEFAULT_REDIS_URL)):
        url = os.environ.setdefault(name, default)
        if not _answers(url):
            missing.append(f"{name}={url}")
            if not ci:
                del os.environ[name]
    if missing and ci:
        print(f"CI: required service(s) not answering: {', '.join(missing)}", file=sys.stderr)
        return 2
    for item in missing:
        print(f"WARNING: {item} does not answer; running without it.", file=sys.stderr)
    if ensure_chromium() is None:
        if ci:
            print("CI: Chromium is missing: the browser tests cannot run.", file=sys.stderr)
            return 2
        print("WARNING: no Chromium; the browser tests will be skipped.", file=sys.stderr)
    if ensure_nginx() is None:
        if ci:
            print("CI: nginx is missing: deploy/nginx.conf cannot be checked.", file=sys.stderr)
            return 2
        print("WARNING: no nginx; deploy/nginx.conf will not be checked.", file=sys.stderr)
    args = [
        "pytest",
        "-n",
        os.environ.get("TEST_PROCESSES", "2"),
        "--dist",
        "loadfile",
        *sys.argv[1:],
    ]
    os.execv(sys.executable, [sys.executable, "-m", *args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
