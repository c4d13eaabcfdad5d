#!/usr/bin/env bash
# Migrate, make the demo tenant and key, then run the web server (uvicorn, ASGI) and a django-q2
# worker together until Ctrl-C.   scripts/serve.sh [PORT]   (default 8000)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-8000}
py=.venv/bin/python

$py manage.py migrate --no-input -v0
$py manage.py bootstrap_demo --base-url "http://127.0.0.1:$port"

# Each child in its own process group (job control): Ctrl-C reaches this script alone, which
# then stops each child with one SIGTERM (two signals at once upset django-q2's shutdown).
set -m
pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop INT TERM EXIT
$py manage.py runworker & pids+=($!)
$py -m uvicorn agentflow_site.asgi:application --host 127.0.0.1 --port "$port" \
  --http agentflow_site.serving:HTTPProtocol --no-access-log --log-level warning & pids+=($!)
# Say it is up only once it answers. The probe runs in the background and is waited for: a
# Ctrl-C while a foreground child runs would be deferred until that child ends, and bash may
# then drop it; `wait` returns at once on a trapped signal and runs `stop`.
$py - "$port" <<'PY' &
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health/live", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
PY
wait $!
echo "==> AgentFlow on http://127.0.0.1:$port (API, admin, docs) with a worker. Ctrl-C stops both."
# Stop everything as soon as either process exits.
wait -n "${pids[@]}"
