#!/usr/bin/env bash
# Check the port, migrate, make the demo tenant and key, then run the web server (uvicorn, ASGI),
# a run worker and the scheduler (django-q2's qcluster: schedules, webhooks) until Ctrl-C.   scripts/serve.sh [PORT]   (default 8000)
# NEW_KEY=1 replaces the demo key kept from the last start.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-8000}
py=.venv/bin/python

if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
  echo "==> PORT must be a number from 1 to 65535, not '$port'. Example: PORT=8001 make run" >&2
  exit 2
fi
# The port first: a taken one stops here, before the database or the demo key is touched (the
# other server may be an AgentFlow on the same database, whose key must keep working).
$py - "$port" <<'PY' || exit 1
import socket, sys
port = int(sys.argv[1])
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as exc:
        sys.exit(
            f"==> Port {port} on 127.0.0.1 is taken ({exc.strerror}): another AgentFlow or "
            f"another program listens there.\n    Pick another: PORT={port + 1} make run"
        )
PY

export LOG_FORMAT=${LOG_FORMAT:-console}  # readable lines in a terminal; production sets json
export Q_LOG_LEVEL=${Q_LOG_LEVEL:-WARNING}  # not the scheduler's every-minute chatter
$py manage.py migrate --no-input -v0
demo=$($py manage.py bootstrap_demo --base-url "http://127.0.0.1:$port" ${NEW_KEY:+--new-key})

# Each child in its own process group (job control): Ctrl-C reaches this script alone, which
# then stops each child with one SIGTERM (two signals at once upset django-q2's shutdown).
set -m
pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap 'stop; echo "==> AgentFlow stopped."; exit 0' INT TERM
trap stop EXIT
$py manage.py runworker & pids+=($!)
Q_WORKERS=${Q_WORKERS:-1} $py manage.py qcluster & pids+=($!)
# The server answers /health/live with this start's own id, so the probe below cannot mistake
# another server on the port (one that took it after the check above) for this one.
export AGENTFLOW_INSTANCE=$RANDOM$RANDOM$RANDOM
$py -m uvicorn agentflow_site.asgi:application --host 127.0.0.1 --port "$port" \
  --http agentflow_site.serving:HTTPProtocol --no-access-log --log-level warning & pids+=($!)
web=$!
# Say it is up only once it answers. The probe runs in the background and is waited for: a
# Ctrl-C while a foreground child runs would be deferred until that child ends, and bash may
# then drop it; `wait` returns at once on a trapped signal and runs `stop`.
$py - "$port" "$web" "$AGENTFLOW_INSTANCE" <<'PY' &
import json, os, sys, time, urllib.request
port, web, instance = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for _ in range(1200):
    try:
        os.kill(web, 0)
    except ProcessLookupError:
        sys.exit(f"==> The web server stopped before it answered on port {port}: see above.")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1) as answer:
            if json.load(answer).get("instance") == instance:
                sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.1)
sys.exit(f"==> The web server did not answer on port {port} within 120 s.")
PY
wait $! || exit 1
echo "$demo"
echo "==> AgentFlow on http://127.0.0.1:$port (API, admin, docs) with a run worker and the"
echo "    scheduler. Ctrl-C stops them all."
# Stop everything as soon as either process exits.
wait -n "${pids[@]}" || true
echo "==> A process of AgentFlow stopped on its own (see above); stopping the rest." >&2
exit 1
