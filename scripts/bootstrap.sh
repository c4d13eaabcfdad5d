#!/usr/bin/env bash
# Create .venv with a Python >= 3.12 and install the locked dependencies into it.
#   scripts/bootstrap.sh requirements.lock          add what is missing (make run)
#   scripts/bootstrap.sh requirements-dev.lock sync  exactly the lock file (make test)
set -euo pipefail
cd "$(dirname "$0")/.."
lock=${1:-requirements.lock}
mode=${2:-install}
UV_VERSION=0.13.8
# Trust the system's certificate store (where a company's or a sandbox's CA is installed),
# not only uv's built-in roots.
export UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-1}"

python=$(scripts/find-python.sh)
if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "==> installing uv $UV_VERSION (the installer) into .tools/ with $python"
  "$python" -m venv --clear .tools
  .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
  echo "==> creating .venv with $python"
  .tools/bin/uv venv --quiet --allow-existing --python "$python" .venv
fi
echo "==> installing from $lock"
if [ "$mode" = sync ]; then
  VIRTUAL_ENV=.venv .tools/bin/uv pip sync --quiet --require-hashes "$lock"
  # The example node plugin the plugin tests load (docs/plugins.md). After the sync, which
  # removes whatever the lock file does not list; uv builds it in-process (uv_build), offline.
  echo "==> installing the example node plugin (examples/plugins/agentflow-plugin-example)"
  VIRTUAL_ENV=.venv .tools/bin/uv pip install --quiet --no-deps \
    -e examples/plugins/agentflow-plugin-example
else
  VIRTUAL_ENV=.venv .tools/bin/uv pip install --quiet --require-hashes -r "$lock"
fi
