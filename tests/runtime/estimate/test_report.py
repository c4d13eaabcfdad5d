"""The estimate of a whole spec, without a database: stand-ins for what earlier nodes write."""

import tracemalloc
from typing import Any

from runtime.estimate import estimate_workflow
from runtime.estimate.tokenizer import text_tokens
from runtime.pricing import PriceTable
from runtime.sandbox.limits import current_limits
from runtime.validation import validate_spec

GPT = {"id": "gpt", "kind": "openai", "config": {"model_name": "gpt-4o", "api_key_env": "K"}}
PRICES = PriceTable({"gpt-4o": (2.0, 8.0)})


def spec(*nodes: dict[str, Any], edges: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "name": "s",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input"}, *nodes],
        "edges": [{"from": a, "to": b} for a, b in edges],
        "sources": [GPT],
    }


def llm(node_id: str, prompt: str, **meta: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "llm", "metadata": {"source": "gpt", "prompt": prompt, **meta}}


def estimated(data: dict[str, Any], state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = validate_spec(data)
    assert result.valid, result.to_dict()
    found = estimate_workflow(result, state, prices=PRICES)
    return {node["node_id"]: dict(node) for node in found["nodes"]}


def test_an_earlier_answer_stands_in_at_its_bound_only_for_the_upper_figure() -> None:
    data = spec(
        llm("first", "{{ user_input }}", max_tokens=40, output_key="notes"),
        llm("second", "Notes: {{ notes }} / {{ outputs.first }}"),
        edges=[("input", "first"), ("first", "second")],
    )
    second = estimated(data, {"user_input": "hi"})["second"]
    plain = text_tokens("o200k_base", "Notes:  / ")
    assert second["prompt_tokens"] == 3 + 1 + plain + 3
    assert second["prompt_tokens_max"] == second["prompt_tokens"] + 80  # both at 40 tokens
    assert second["unknown_inputs"] == ["notes", "outputs"]


def test_the_initial_state_value_of_a_key_a_node_writes_is_used() -> None:
    data = spec(
        llm("a", "{{ text_result or user_input }}", max_tokens=5),
        edges=[("input", "a")],
    )
    node = estimated(data, {"user_input": "x", "text_result": "hello world"})["a"]
    assert node["prompt_tokens"] == 3 + 1 + 2 + 3
    assert node["unknown_inputs"] == []  # nothing before it writes text_result


def test_a_template_that_fails_counts_its_source_and_says_so() -> None:
    data = spec(llm("a", "{{ user_input + 1 }}"), edges=[("input", "a")])
    node = estimated(data, {"user_input": "text"})["a"]
    assert node["rendered"] is False
    assert node["prompt_tokens"] == 3 + 1 + text_tokens("o200k_base", "{{ user_input + 1 }}") + 3


def test_costs_are_tokens_times_the_table() -> None:
    data = spec(llm("a", "{{ user_input }}", max_tokens=100), edges=[("input", "a")])
    node = estimated(data, {"user_input": "hello world"})["a"]
    assert node["price_per_million_tokens"] == {"input": 2.0, "output": 8.0}
    assert node["cost"] == round((node["prompt_tokens"] * 2.0 + 100 * 8.0) / 1e6, 8)


def test_a_thousand_llm_nodes_in_a_row_are_estimated_in_well_under_two_seconds() -> None:
    import time

    nodes = [
        llm(f"n{i}", "Go on: {{ text_result or user_input }}", max_tokens=5) for i in range(999)
    ]
    edges = [("input", "n0"), *((f"n{i}", f"n{i + 1}") for i in range(998))]
    result = validate_spec(spec(*nodes, edges=edges))
    text_tokens("o200k_base", "warm")  # the encoding loads once per process
    started = time.perf_counter()
    found = estimate_workflow(result, {"user_input": "hi"}, prices=PRICES)
    assert time.perf_counter() - started < 2.0
    assert len(found["most_expensive"]["nodes"]) == 1000


def test_a_semantic_router_embeds_the_message_and_its_examples() -> None:
    router = {
        "id": "r",
        "type": "router",
        "metadata": {
            "strategy": "semantic",
            "source": "emb",
            "examples": {"billing": ["refund please", "my invoice"], "help": ["how do I"]},
            "default": "help",
        },
    }
    data = spec(router, edges=[("input", "r")])
    emb = {"model_name": "text-embedding-3-small", "api_key_env": "K"}
    data["sources"].append({"id": "emb", "kind": "openai", "config": emb})
    node = estimated(data, {"user_input": "where is my money"})["r"]
    texts = ["where is my money", "refund please", "my invoice", "how do I"]
    assert node["call"] == "embeddings" and node["tokenizer"] == "cl100k_base"
    assert node["prompt_tokens"] == sum(text_tokens("cl100k_base", t) for t in texts)
    assert node["completion_tokens_max"] == 0


def test_an_llm_router_asks_for_twenty_tokens_and_sees_the_longest_intent_before_it() -> None:
    first = {
        "id": "first",
        "type": "router",
        "metadata": {
            "strategy": "keyword",
            "routes": {"a_very_long_intent": ["x"]},
            "default": "b",
        },
    }
    second = {
        "id": "second",
        "type": "router",
        "metadata": {
            "strategy": "llm",
            "source": "gpt",
            "intents": {"yes": "agree", "no": "disagree"},
            "prompt": "{{ intent }}: {{ user_input }}",
            "default": "no",
        },
    }
    data = spec(first, second, llm("after", "ok"), edges=[("input", "first")])
    data["edges"] += [
        {"from": "first", "to": "second", "condition": "a_very_long_intent"},
        {"from": "first", "to": "second", "condition": "b"},
        {"from": "second", "to": "after", "condition": "yes"},
    ]
    node = estimated(data, {"user_input": "hi"})["second"]
    assert node["completion_tokens_max"] == 20
    extra = text_tokens("o200k_base", "a_very_long_intent: hi") - text_tokens("o200k_base", ": hi")
    assert node["prompt_tokens_max"] - node["prompt_tokens"] == extra
    assert node["unknown_inputs"] == ["intent"]


def test_a_spec_cannot_make_the_estimate_build_its_stand_ins() -> None:
    """`max_tokens` is the spec's own: a stand-in is a marker, never text that long, so many
    nodes reading `outputs` with huge bounds cost little memory, and a prompt counts at most
    what one rendered template may hold."""
    chain = [llm(f"n{i}", "{{ text_result }} {{ outputs }}", max_tokens=10**9) for i in range(300)]
    data = spec(*chain, edges=[("input", "n0")] + [(f"n{i}", f"n{i + 1}") for i in range(299)])
    tracemalloc.start()
    try:
        found = estimated(data, {"user_input": "hi"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    held = current_limits().template_max_output_chars // 4
    last = found["n299"]
    assert held < last["prompt_tokens_max"] < 2 * held  # not 10**9 for each earlier answer
