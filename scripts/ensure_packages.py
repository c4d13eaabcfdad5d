"""Make sure the system programs some tests drive are installed: Chromium and nginx.

The browser tests drive the system's Chromium (`/usr/bin/chromium`, Debian's `chromium`
package): Playwright's own browser download cannot reach the internet on these machines. The
deployment tests check `deploy/nginx.conf` with `nginx -t` (Debian's `nginx-light`). When one is
missing, and this runs as root with apt-get available, it is installed. `make test` calls this
before the suite; `python scripts/ensure_packages.py` does it alone (exit 1: one still missing).
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

CHROMIUM = os.environ.get("AGENTFLOW_CHROMIUM", "/usr/bin/chromium")
"""The browser the tests launch (tests/browser/conftest.py reads the same variable)."""
SBIN = "/usr/sbin:/usr/local/sbin"


def chromium_path() -> str | None:
    """The installed Chromium, or None."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def nginx_path() -> str | None:
    """The installed nginx, or None."""
    return shutil.which("nginx") or shutil.which("nginx", path=SBIN)


def _apt_install(package: str, found: Callable[[], str | None], what: str) -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            f"{what} is missing and cannot be installed here (that needs root and apt-get): "
            f"install Debian's `{package}` package.",
            file=sys.stderr,
        )
        return None
    print(f"==> installing {package} (apt-get) for the tests", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            print(f"`{' '.join(command)}` failed: {what} is not installed.", file=sys.stderr)
            return None
    path = found()
    if path is None:
        print(f"apt-get installed {package}, but {what} is still not found.", file=sys.stderr)
    return path


def ensure_chromium() -> str | None:
    """The installed Chromium, installed first with apt-get when it is missing and can be."""
    return chromium_path() or _apt_install("chromium", chromium_path, f"Chromium ({CHROMIUM})")


def ensure_nginx() -> str | None:
    """The installed nginx, installed first (nginx-light) when it is missing and can be. Only
    its binary is used (`nginx -t`); the package's own service is stopped and left off."""
    found = nginx_path()
    if found is not None:
        return found
    found = _apt_install("nginx-light", nginx_path, "nginx")
    if found is not None and shutil.which("service"):
        subprocess.run(["service", "nginx", "stop"], check=False, capture_output=True)
    return found


if __name__ == "__main__":
    sys.exit(0 if ensure_chromium() and ensure_nginx() else 1)
