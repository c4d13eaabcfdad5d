"""What the bounded sandbox costs: every template in examples/*.json, rendered by the old module
(`bench/_baseline_templates.py`, a verbatim copy of runtime/templates.py before the sandbox got
its meter) and by `runtime.sandbox.templates`, side by side in one process.

Run: `python bench/bench_templates.py [--rounds N] [--batch N]`. Each round renders every template
`batch` times with one implementation, then the other (their order alternating), against a state
that has every field the examples read. Per template, the fastest batches of the two are compared
(on a busy machine the fastest is the least disturbed), and the median of those ratios is the
number to watch (the target: at most 1.2); the ratio of median batches is printed beside it.
"""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import _baseline_templates as baseline  # noqa: E402

from runtime.sandbox import templates as bounded  # noqa: E402

STATE: dict[str, Any] = {
    "user_input": "Where is my order #1234? It was due on Monday and I still have nothing.",
    "text_result": "Your order ships tomorrow.",
    "metadata": {"customer_id": "c-42", "customer_email": "ann@example.com", "tier": "pro"},
    "http_result": {"status": 200, "body": {"name": "Ann", "plan": "pro"}},
    "db_result": {
        "columns": ["name", "price", "stock"],
        "rows": [{"name": f"item {i}", "price": 9.5 + i, "stock": i} for i in range(10)],
        "row_count": 10,
        "truncated": False,
    },
    "style_notes": "Short sentences.",
    "fact_notes": "Two claims to check.",
    "tone_notes": "Friendly.",
}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def example_templates() -> list[str]:
    found: dict[str, None] = {}
    for path in sorted((ROOT / "examples").glob("*.json")):
        for text in _strings(json.loads(path.read_text())):
            if "{{" in text or "{%" in text:
                found[text] = None
    return list(found)


def _per_render(render: Callable[..., str], source: str, batch: int) -> float:
    start = time.perf_counter()
    for _ in range(batch):
        render(source, STATE)
    return (time.perf_counter() - start) / batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    sources = example_templates()
    renders = {"old": baseline.render_template, "new": bounded.render_template}
    for render in renders.values():  # compile, and check both render the same text
        outputs = {render(source, STATE) for source in sources for _ in range(2)}
    assert [baseline.render_template(s, STATE) for s in sources] == [
        bounded.render_template(s, STATE) for s in sources
    ]
    times: dict[str, dict[str, list[float]]] = {name: {s: [] for s in sources} for name in renders}
    for round_number in range(args.rounds):
        order = list(renders) if round_number % 2 == 0 else list(reversed(renders))
        for source in sources:
            for name in order:
                times[name][source].append(_per_render(renders[name], source, args.batch))
    fastest, typical = [], []
    print(f"{len(sources)} templates from examples/*.json, {args.rounds} rounds x {args.batch}")
    print(f"{'old µs':>8} {'new µs':>8} {'ratio':>6} {'median':>7}  template (µs: fastest batch)")
    for source in sources:
        old, new = min(times["old"][source]) * 1e6, min(times["new"][source]) * 1e6
        middle = statistics.median(times["new"][source]) / statistics.median(times["old"][source])
        fastest.append(new / old)
        typical.append(middle)
        print(f"{old:8.2f} {new:8.2f} {new / old:6.2f} {middle:7.2f}  {source[:60]!r}")
    del outputs
    print(
        f"median ratio new/old: {statistics.median(fastest):.3f} over fastest batches "
        f"(worst template {max(fastest):.3f}); {statistics.median(typical):.3f} over median ones"
    )


if __name__ == "__main__":
    main()
