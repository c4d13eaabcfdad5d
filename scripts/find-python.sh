#!/usr/bin/env bash
# Print the path of a Python >= 3.12: $PYTHON if set, then the PATH, then pyenv's and the usual
# install locations. Exit 1, saying what to do, when there is none.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

# A PYTHON the user names is the one used, or the reason it cannot be is said.
if [ -n "${PYTHON:-}" ]; then
  path=$(command -v "$PYTHON" 2>/dev/null)
  if [ -z "$path" ]; then
    echo "PYTHON=$PYTHON: no such program. Unset PYTHON to let AgentFlow find a Python 3.12+," >&2
    echo "or point it at one: PYTHON=/path/to/python3.13 make run" >&2
    exit 1
  fi
  if ! ok "$path"; then
    version=$("$path" -c 'import platform; print(platform.python_version())' 2>/dev/null) ||
      version="that did not run ($path)"
    echo "PYTHON=$PYTHON is Python $version; AgentFlow needs 3.12 or newer. Unset PYTHON to let" >&2
    echo "AgentFlow find one, or point it at a newer Python: PYTHON=/path/to/python3.13 make run" >&2
    exit 1
  fi
  echo "$path"
  exit 0
fi
candidates=()
for v in 3.14 3.13 3.12; do candidates+=("python$v"); done
candidates+=(python3 python)
roots=()
command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root)/versions")
roots+=("${PYENV_ROOT:-$HOME/.pyenv}/versions" "$HOME/.local/share/uv/python")
for root in "${roots[@]}"; do
  for dir in $(ls -d "$root"/*3.1[2-9]* 2>/dev/null | sort -rV); do
    candidates+=("$dir/bin/python3")
  done
done
for v in 3.14 3.13 3.12; do
  candidates+=("/usr/local/bin/python$v" "/opt/homebrew/bin/python$v" "/usr/bin/python$v")
done

for c in "${candidates[@]}"; do
  path=$(command -v "$c" 2>/dev/null) || continue
  if ok "$path"; then echo "$path"; exit 0; fi
done
echo "AgentFlow needs Python 3.12 or newer, and none was found (looked on the PATH, in pyenv" >&2
echo "and in the usual install places). Install one (e.g. 'pyenv install 3.13') or point" >&2
echo "PYTHON at it: make run PYTHON=/path/to/python3.13" >&2
exit 1
