"""Scraping `/metrics` as Prometheus would, and reading a sample out of it."""

import json
import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
TOKEN = "metrics-token-" + "0123456789abcdef"
EXECUTE = "/api/v1/workflows/execute"

Samples = list[tuple[str, dict[str, str], float]]


def parse(text: str) -> Samples:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    return sum(
        value
        for found, have, value in samples
        if found == name and all(have.get(k) == v for k, v in labels.items())
    )


def names(samples: Samples) -> set[str]:
    return {name for name, _, _ in samples}


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


def two_step(name: str = "metrics-demo") -> dict[str, Any]:
    """input → a template answer: runs anywhere, calls nobody."""
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "answer",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "hi {{ user_input }}"},
            },
        ],
        "edges": [{"from": "input", "to": "answer"}],
    }


def queued_two_step(per_second: float) -> tuple[dict[str, Any], str]:
    """`two_step` with a queue (a fresh id) on its edge: (spec, queue id)."""
    spec, queue = two_step(), f"q{uuid.uuid4().hex[:8]}"
    bandwidth = {"max_messages_per_second": per_second}
    spec["queues"] = [{"id": queue, "from": "input", "to": "answer", "bandwidth": bandwidth}]
    return spec, queue
