"""How fast `/health/live` answers while tenants' bombs run in the same web process.

Run: `python bench/bench_bombs.py [--rounds N]`. Starts uvicorn on SQLite in a temporary
directory (the bombs need no database of their own), probes `/health/live` every 20 ms from
another thread, first with nothing running (the floor), then while each bomb of
tests/executions/test_bombs.py that works inside the process (templates and rules) runs through
`POST /api/v1/workflows/execute`. Prints each phase's p50, p99 and worst answer, and the worst
against the floor's. Target: worst <= 100 ms.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOOP_500 = (
    "{% set x = [0] * 500 %}{% for a in x %}{% for b in x %}{% for c in x %}"
    "{% endfor %}{% endfor %}{% endfor %}done"
)
DOUBLING = (
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}"
)
TEMPLATES = {
    "pow-10": "{{ (((7**1000)**1000)**10) > 0 }}",
    "loop-500-cubed": LOOP_500,
    "concat-doubling": DOUBLING,
    "lipsum": "{{ lipsum(20000) }}",
    "center": "{{ 'a'|center(100000000) }}",
    "tojson-indent": "{{ range(100000)|list|tojson(indent=100000) }}",
}
RULE = "items.all(a, items.all(b, items.all(c, a + b + c >= 0)))"


def _spec(template: str | None = None, rule: str | None = None) -> dict:
    node: dict = {"id": "bomb", "type": "aggregator"}
    node["metadata"] = {"strategy": "template", "template": template, "timeout_seconds": 2}
    nodes = [{"id": "input", "type": "input", "metadata": {"required": []}}, node]
    edges = [{"from": "input", "to": "bomb"}]
    if rule is not None:
        node["type"] = "router"
        node["metadata"] = {
            "strategy": "rules",
            "rules": [{"when": rule, "intent": "yes"}],
            "default": "no",
            "timeout_seconds": 2,
        }
        nodes += [
            {"id": "yes", "type": "aggregator", "metadata": {"strategy": "merge"}},
            {"id": "no", "type": "aggregator", "metadata": {"strategy": "merge"}},
        ]
        edges += [
            {"from": "bomb", "to": "yes", "condition": "yes"},
            {"from": "bomb", "to": "no"},
        ]
    spec: dict[str, Any] = {"name": "bomb", "start_node": "input", "nodes": nodes}
    spec["edges"] = edges
    spec["limits"] = {"timeout_seconds": 3}
    return spec


class Probe(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.samples, self.stop = url, list[float](), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            urllib.request.urlopen(self.url, timeout=30).read()
            self.samples.append(time.perf_counter() - start)
            self.stop.wait(0.02)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _line(name: str, samples: list[float], floor: float | None) -> str:
    worst = max(samples)
    text = (
        f"{name:>16}: p50 {statistics.median(samples) * 1000:6.1f} ms, p99 "
        f"{_pct(samples, 0.99) * 1000:6.1f} ms, worst {worst * 1000:6.1f} ms "
        f"({len(samples)} probes)"
    )
    return text + (f", worst {worst / floor:.1f}x the floor's" if floor else "")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="agentflow-bench-")
    env = {**os.environ, "AGENTFLOW_DATA_DIR": data_dir, "LOG_LEVEL": "WARNING"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    os.environ.update(env)
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentflow_site.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    from tenants.services import api_key_create, tenant_create

    _, secret = api_key_create(tenant=tenant_create(slug="bench"), role="executor", actor="bench")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "agentflow_site.asgi:application", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/health/live", timeout=1)
                break
            except OSError:
                time.sleep(0.1)

        def execute(spec: dict, state: dict) -> dict:
            body = json.dumps({"workflow": spec, "initial_state": state}).encode()
            request = urllib.request.Request(
                f"{base}/api/v1/workflows/execute",
                data=body,
                headers={"X-API-Key": secret, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())

        def phase(run: object) -> list[float]:
            probe = Probe(f"{base}/health/live")
            probe.start()
            if callable(run):
                run()
            else:
                time.sleep(float(run))  # type: ignore[arg-type]
            probe.stop.set()
            probe.join()
            return probe.samples

        execute(_spec("{{ 1 }}"), {})  # warm
        floor = phase(3.0)
        print(_line("nothing running", floor, None))
        worst_floor = max(floor)
        bombs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
            name: (_spec(template=t), {}) for name, t in TEMPLATES.items()
        }
        bombs["cel-all-cubed"] = (_spec(rule=RULE), {"items": list(range(300))})
        worst_all = 0.0
        for name, (spec, state) in bombs.items():
            samples: list[float] = []
            for _ in range(args.rounds):
                samples += phase(lambda spec=spec, state=state: execute(spec, state))
            worst_all = max(worst_all, max(samples))
            print(_line(name, samples, worst_floor))
        print(f"worst answer during any bomb: {worst_all * 1000:.1f} ms (target <= 100 ms)")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
