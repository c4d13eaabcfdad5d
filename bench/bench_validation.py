"""How long validate_spec takes: the examples, a 50-node and a 1,000-node spec, in-process.

Run: `python bench/bench_validation.py [--repeat N] [--check]`. Prints median and p95 in ms for each
case, both "warm" (template/CEL caches filled, as for a spec validated again) and "cold" (caches
cleared before every run, as for a spec never seen). `--check` exits 1 when a median misses its
target (50 nodes < 5 ms, 1,000 nodes < 100 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.sandbox import expressions, templates  # noqa: E402
from runtime.validation import validate_spec  # noqa: E402
from tests.runtime.factories import chain_spec  # noqa: E402

TARGETS_MS = {"50 nodes (text)": 5.0, "1000 nodes (text)": 100.0}


def _clear() -> None:
    templates.clear_caches()
    expressions.clear_caches()


def measure(data: Any, repeat: int, cold: bool, valid: bool) -> list[float]:
    """Milliseconds per validate_spec call; each call must find the spec valid (or not)."""
    times = []
    for _ in range(repeat):
        if cold:
            _clear()
        start = time.perf_counter()
        result = validate_spec(data)
        times.append((time.perf_counter() - start) * 1000)
        assert result.valid == valid, result.to_dict()["errors"][:3]
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def cases() -> dict[str, Any]:
    found: dict[str, Any] = {
        f"example {p.name}": p.read_bytes() for p in sorted((ROOT / "examples").glob("*.json"))
    }
    for n in (50, 1000):
        spec = chain_spec(n)
        found[f"{n} nodes (text)"] = json.dumps(spec, indent=2)
        found[f"{n} nodes (dict)"] = spec
    found["1000 nodes, rich templates (text)"] = json.dumps(_rich(chain_spec(1000)), indent=2)
    found["1000 nodes, 3 errors each (text) !"] = json.dumps(_broken(chain_spec(1000)), indent=2)
    return found


def _rich(spec: dict[str, Any]) -> dict[str, Any]:
    """Every template needs jinja's full parser (no fast path): the worst case for a valid spec."""
    for node in spec["nodes"]:
        meta = node.get("metadata", {})
        for key in ("prompt", "template"):
            if key in meta:
                meta[key] += " {% if intent %}{{ intent | upper }}{% endif %}"
    return spec


def _broken(spec: dict[str, Any]) -> dict[str, Any]:
    """Every edge to a missing node, an unknown field in every node: the error path."""
    for edge in spec["edges"]:
        edge["to"] += "x"
    for i, node in enumerate(spec["nodes"]):
        node.setdefault("metadata", {})[f"bogus{i}"] = 1
    return spec


def run(repeat: int, report: Callable[[str], None]) -> dict[str, float]:
    medians: dict[str, float] = {}
    report(
        f"{'case':36} {'bytes':>8} {'warm median':>12} {'warm p95':>9} "
        f"{'cold median':>12} {'cold p95':>9}"
    )
    for name, data in cases().items():
        size = len(data) if isinstance(data, str | bytes) else len(json.dumps(data))
        runs = max(5, repeat // 10) if "1000" in name else repeat
        valid = not name.endswith("!")
        warm = measure(data, runs, cold=False, valid=valid)
        cold = measure(data, runs, cold=True, valid=valid)
        medians[name] = statistics.median(cold)
        report(
            f"{name:36} {size:8,} {statistics.median(warm):12.2f} {p95(warm):9.2f} "
            f"{statistics.median(cold):12.2f} {p95(cold):9.2f}"
        )
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--check", action="store_true", help="fail when a target is missed")
    args = parser.parse_args()
    medians = run(args.repeat, print)
    missed = [f"{k}: {medians[k]:.1f} ms > {v} ms" for k, v in TARGETS_MS.items() if medians[k] > v]
    for line in missed:
        print("MISSED", line)
    print("targets (cold median): " + ", ".join(f"{k} < {v} ms" for k, v in TARGETS_MS.items()))
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
