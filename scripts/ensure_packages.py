"""Make sure the browser the browser tests drive is installed.

The tests drive the system's Chromium (`/usr/bin/chromium`, Debian's `chromium` package):
Playwright's own browser download cannot reach the internet on these machines. When it is
missing, and this runs as root with apt-get available, it is installed. `make test` calls this
before the suite; `python scripts/ensure_chromium.py` does it alone (exit 1: still missing).
"""

import os
import shutil
import subprocess
import sys

CHROMIUM = os.environ.get("AGENTFLOW_CHROMIUM", "/usr/bin/chromium")
"""The browser the tests launch (tests/browser/conftest.py reads the same variable)."""


def chromium_path() -> str | None:
    """The installed Chromium, or None."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def ensure_chromium() -> str | None:
    """The installed Chromium, installed first with apt-get when it is missing and can be."""
    found = chromium_path()
    if found is not None:
        return found
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            f"Chromium is not at {CHROMIUM} and cannot be installed here (that needs root and "
            "apt-get): install Debian's `chromium` package, or set AGENTFLOW_CHROMIUM.",
            file=sys.stderr,
        )
        return None
    print("==> installing chromium (apt-get) for the browser tests", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            print(f"`{' '.join(command)}` failed: Chromium is not installed.", file=sys.stderr)
            return None
    found = chromium_path()
    if found is None:
        print(f"apt-get installed chromium, but it is not at {CHROMIUM}.", file=sys.stderr)
    return found


if __name__ == "__main__":
    sys.exit(0 if ensure_chromium() else 1)
