"""Specs to start tests from: a small valid support desk, and generated chains of any size."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from runtime.errors import SpecError
from runtime.validation import ValidationOptions, ValidationResult, validate_spec

SUPPORT_DESK: dict[str, Any] = {
    "name": "support-desk",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "router",
            "type": "router",
            "metadata": {
                "strategy": "keyword",
                "routes": {"image": ["draw", "picture"], "data": ["order", "invoice"]},
                "default": "text",
            },
        },
        {
            "id": "writer",
            "type": "llm",
            "metadata": {"source": "gpt", "prompt": "Answer: {{ user_input }}", "temperature": 0.2},
        },
        {
            "id": "illustrator",
            "type": "image",
            "metadata": {"source": "dalle", "prompt": "{{ user_input }}", "size": "1024x1024"},
        },
        {
            "id": "orders",
            "type": "db",
            "metadata": {
                "source": "shop",
                "query": "SELECT id, total FROM orders WHERE email = %(email)s",
                "params": {"email": "{{ metadata.email }}"},
            },
        },
        {"id": "answer", "type": "aggregator", "metadata": {"strategy": "merge"}},
    ],
    "edges": [
        {"from": "input", "to": "router"},
        {"from": "router", "to": "illustrator", "condition": "image"},
        {"from": "router", "to": "orders", "condition": "data"},
        {"from": "router", "to": "writer"},
        {"from": "illustrator", "to": "answer"},
        {"from": "orders", "to": "answer"},
        {"from": "writer", "to": "answer"},
    ],
    "queues": [
        {
            "id": "llm-lane",
            "from": "router",
            "to": "writer",
            "bandwidth": {"max_requests_per_minute": 60},
        }
    ],
    "sources": [
        {
            "id": "gpt",
            "kind": "openai",
            "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
        },
        {
            "id": "dalle",
            "kind": "openai_image",
            "config": {"model_name": "gpt-image-1", "api_key_env": "OPENAI_API_KEY"},
        },
        {"id": "shop", "kind": "postgres", "config": {"connection_string_env": "SHOP_DB_URL"}},
    ],
}


def support_desk() -> dict[str, Any]:
    return copy.deepcopy(SUPPORT_DESK)


def node(spec: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in spec["nodes"] if n["id"] == node_id)


def chain_spec(n_nodes: int, *, templates: bool = True) -> dict[str, Any]:
    """input → router → (n-3 llm/db/aggregator nodes in a chain) → answer; every node type used."""
    kinds = [
        ("llm", lambda i: {"source": "gpt", "prompt": f"Step {i}: {{{{ user_input }}}}"}),
        (
            "aggregator",
            lambda i: {"strategy": "template", "template": f"{i}: {{{{ text_result }}}}"},
        ),
        (
            "db",
            lambda i: {"source": "shop", "query": f"SELECT {i}", "params": {"x": "{{ intent }}"}},
        ),
        ("http", lambda i: {"source": "crm", "path": f"/items/{i}/{{{{ metadata.id }}}}"}),
    ]
    nodes: list[dict[str, Any]] = [
        {"id": "input", "type": "input"},
        {
            "id": "router",
            "type": "router",
            "metadata": {
                "strategy": "rules",
                "rules": [{"when": "size(user_input) > 3", "intent": "long"}],
                "default": "short",
            },
        },
    ]
    for i in range(n_nodes - 3):
        node_type, make = kinds[i % len(kinds)]
        meta = make(i) if templates else {"strategy": "merge"}
        nodes.append(
            {"id": f"n{i}", "type": node_type if templates else "aggregator", "metadata": meta}
        )
    nodes.append({"id": "answer", "type": "aggregator", "metadata": {"strategy": "merge"}})
    ids = [n["id"] for n in nodes]
    edges: list[dict[str, Any]] = [{"from": "input", "to": "router"}]
    edges.append({"from": "router", "to": ids[2], "condition": "long"})
    edges.append({"from": "router", "to": "answer"})
    edges += [{"from": a, "to": b} for a, b in itertools.pairwise(ids[2:])]
    return {
        "name": f"chain-{n_nodes}",
        "start_node": "input",
        "nodes": nodes,
        "edges": edges,
        "queues": [
            {
                "id": "lane",
                "from": "input",
                "to": "router",
                "bandwidth": {"max_messages_per_second": 5},
            }
        ],
        "sources": [
            {
                "id": "gpt",
                "kind": "openai",
                "config": {"model_name": "gpt-4o-mini", "api_key_env": "K"},
            },
            {"id": "shop", "kind": "sqlite", "config": {"path": "shop.sqlite3"}},
            {"id": "crm", "kind": "http", "config": {"base_url": "https://crm.example.com"}},
        ],
    }


def as_text(spec: Any) -> str:
    return json.dumps(spec, indent=2)


def line_of(text: str, needle: str) -> int:
    """The 1-based line where `needle` first occurs (an independent check of reported lines)."""
    index = text.index(needle)
    return text.count("\n", 0, index) + 1


def validate_text(spec: Any, **options: Any) -> tuple[ValidationResult, str]:
    text = as_text(spec)
    return validate_spec(text, options=ValidationOptions(**options)), text


def only(result: ValidationResult, type_: str) -> SpecError:
    """The single error of `type_` (failing with everything that was found otherwise)."""
    found = [e for e in result.errors if e.type == type_]
    assert len(found) == 1, [e.to_dict() for e in result.errors]
    return found[0]
