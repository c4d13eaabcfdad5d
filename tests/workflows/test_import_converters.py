"""The Dify and Flowise converters on their own: no database, no server."""

from typing import Any

import pytest

from workflows.imports import dify, flowise
from workflows.imports.common import Edge, bridged, cel_literal, cel_string
from workflows.imports.report import ImportOptions, NotConvertible

OPTIONS = ImportOptions()


def dify_doc(nodes: list[dict[str, Any]], edges: list[tuple[str, str, str]]) -> dict[str, Any]:
    start = {"id": "s", "data": {"type": "start", "variables": [{"variable": "q"}]}}
    graph = {
        "nodes": [start, *nodes],
        "edges": [{"source": a, "target": b, "sourceHandle": h} for a, b, h in edges],
    }
    return {"app": {"name": "t", "mode": "workflow"}, "kind": "app", "workflow": {"graph": graph}}


def llm(node_id: str, text: str) -> dict[str, Any]:
    model = {"provider": "openai", "name": "gpt-4o-mini", "completion_params": {}}
    prompt = [{"role": "user", "text": text}]
    return {"id": node_id, "data": {"type": "llm", "model": model, "prompt_template": prompt}}


def node(spec: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in spec["nodes"] if n["id"] == node_id)


def test_dify_references_become_jinja_over_state_keys() -> None:
    doc = dify_doc(
        [
            llm("first", "Say {{#s.q#}} and {{#sys.query#}}"),
            llm("1700", "Improve: {{#first.text#}}"),
            {"id": "c", "data": {"type": "code"}},
            llm("after", "Count: {{#c.result#}}"),
        ],
        [
            ("s", "first", "source"),
            ("first", "1700", "source"),
            ("1700", "c", "source"),
            ("c", "after", "source"),
        ],
    )
    converted = dify.convert(doc, OPTIONS)
    spec, report = converted.spec, converted.report
    assert node(spec, "first")["metadata"]["prompt"] == "Say {{ q }} and {{ user_input }}"
    assert node(spec, "first")["metadata"]["output_key"] == "first"
    assert node(spec, "llm_1700")["metadata"]["prompt"] == "Improve: {{ first }}"
    assert node(spec, "after")["metadata"]["prompt"] == "Count: "
    assert any("{{#c.result#}}" in n for n in report.notes)
    assert {"from": "llm_1700", "to": "after"} in spec["edges"]  # bridged over the code node
    assert [n["id"] for n in report.not_mapped] == ["c"]


def test_dify_if_else_cases_become_cel_rules_and_conditional_edges() -> None:
    case = {
        "case_id": "big",
        "logical_operator": "and",
        "conditions": [
            {"variable_selector": ["s", "q"], "comparison_operator": "start with", "value": "it's"},
            {"variable_selector": ["s", "n"], "comparison_operator": "≥", "value": "3"},
            {"variable_selector": ["s", "q"], "comparison_operator": "not empty"},
        ],
    }
    doc = dify_doc(
        [
            {"id": "if", "data": {"type": "if-else", "cases": [case]}},
            llm("yes", "y"),
            llm("no", "n"),
        ],
        [("s", "if", "source"), ("if", "yes", "big"), ("if", "no", "false")],
    )
    spec = dify.convert(doc, OPTIONS).spec
    router = node(spec, "if")["metadata"]
    assert router["strategy"] == "rules" and router["default"] == "false"
    assert router["rules"] == [
        {
            "when": "(q.startsWith('it\\'s')) && (double(n) >= 3.0) && (size(q) > 0)",
            "intent": "big",
        }
    ]
    assert {"from": "if", "to": "yes", "condition": "big"} in spec["edges"]
    assert {"from": "if", "to": "no", "condition": "false"} in spec["edges"]


def test_an_older_if_else_without_cases_and_an_unknown_operator() -> None:
    old = {
        "type": "if-else",
        "logical_operator": "or",
        "conditions": [
            {"variable_selector": ["sys", "query"], "comparison_operator": "is", "value": "hi"}
        ],
    }
    spec = dify.convert(dify_doc([{"id": "if", "data": old}], []), OPTIONS).spec
    assert node(spec, "if")["metadata"]["rules"] == [
        {"when": "(user_input == 'hi')", "intent": "true"}
    ]
    odd = {
        "type": "if-else",
        "cases": [
            {
                "case_id": "x",
                "conditions": [
                    {
                        "variable_selector": ["s", "q"],
                        "comparison_operator": "regex match",
                        "value": ".",
                    }
                ],
            }
        ],
    }
    report = dify.convert(dify_doc([{"id": "if", "data": odd}], []), OPTIONS).report
    assert report.not_mapped[0]["id"] == "if" and "regex match" in report.not_mapped[0]["reason"]


def test_a_classifier_becomes_an_llm_router_and_http_an_http_node() -> None:
    classifier = {
        "type": "question-classifier",
        "model": {"provider": "openai", "name": "gpt-4o-mini"},
        "classes": [{"id": "1", "name": "billing"}, {"id": "2", "name": "other"}],
        "query_variable_selector": ["sys", "query"],
    }
    http = {
        "type": "http-request",
        "method": "post",
        "url": "https://api.example.com/v1/items/{{#s.q#}}",
        "headers": "Authorization:Bearer sk-live\nX-Trace:{{#s.q#}}",
        "body": {"type": "json", "data": '{"q": "{{#s.q#}}"}'},
    }
    doc = dify_doc([{"id": "qc", "data": classifier}, {"id": "h", "data": http}], [])
    converted = dify.convert(doc, ImportOptions(api_key_env="AGENTFLOW_T_ACME_OPENAI"))
    spec = converted.spec
    assert node(spec, "qc")["metadata"] == {
        "strategy": "llm",
        "source": "openai_gpt_4o_mini",
        "intents": {"1": "billing", "2": "other"},
        "default": "1",
    }
    meta = node(spec, "h")["metadata"]
    assert (meta["method"], meta["path"]) == ("POST", "/v1/items/{{ q }}")
    assert meta["headers"] == {"X-Trace": "{{ q }}"}  # the credential header is left out
    assert meta["body"] == {"q": "{{ q }}"}
    sources = {s["id"]: s for s in spec["sources"]}
    assert sources["http_h"]["config"] == {"base_url": "https://api.example.com"}
    assert sources["openai_gpt_4o_mini"]["config"]["api_key_env"] == "AGENTFLOW_T_ACME_OPENAI"
    assert any("Authorization" in n for n in converted.report.notes)


def test_a_source_map_names_a_stored_source_instead_of_an_inline_one() -> None:
    doc = dify_doc([llm("a", "x")], [("s", "a", "source")])
    spec = dify.convert(doc, ImportOptions(source_map={"openai": "my-gpt"})).spec
    assert node(spec, "a")["metadata"]["source"] == "my-gpt" and "sources" not in spec


def test_a_document_without_a_graph_or_a_start_is_not_convertible() -> None:
    with pytest.raises(NotConvertible):
        dify.convert({"app": {"mode": "chat"}, "kind": "app"}, OPTIONS)
    with pytest.raises(NotConvertible):
        dify.convert(
            {"app": {}, "workflow": {"graph": {"nodes": [{"id": "x", "data": {"type": "llm"}}]}}},
            OPTIONS,
        )


def test_flowise_prompt_values_become_jinja() -> None:
    chat = {"id": "m", "data": {"name": "chatOpenAI", "inputs": {"modelName": "gpt-4o"}}}
    prompt = {
        "id": "p",
        "data": {
            "name": "promptTemplate",
            "inputs": {
                "template": "{lang}: {question} {{literal}}",
                "promptValues": {"lang": "French"},
            },
        },
    }
    chain = {
        "id": "c",
        "data": {
            "name": "llmChain",
            "inputs": {"model": "{{m.data.instance}}", "prompt": "{{p.data.instance}}"},
        },
    }
    spec = flowise.convert({"nodes": [chat, prompt, chain], "edges": []}, OPTIONS).spec
    assert node(spec, "c")["metadata"]["prompt"] == "French: {{ user_input }} {{literal}}"


def test_helpers_quote_and_bridge() -> None:
    assert cel_string("a'b\\") == "'a\\'b\\\\'"
    assert (cel_literal("2"), cel_literal(True), cel_literal("x")) == ("2.0", "true", "'x'")
    edges = [("a", "x", "yes"), ("x", "y", None), ("y", "b", None), ("a", "c", "no")]
    assert bridged(edges, {"a", "b", "c"}) == [("a", "c", "no"), ("a", "b", "yes")]


def test_flowise_v2_conditions_become_rules_and_handles_intents() -> None:
    nodes: list[dict[str, Any]] = [
        {"id": "s", "data": {"name": "startAgentflow", "inputs": {}}},
        {
            "id": "c",
            "data": {
                "name": "conditionAgentflow",
                "inputs": {
                    "conditions": [
                        {
                            "type": "number",
                            "value1": "{{ $flow.state.score }}",
                            "operation": "equal",
                            "value2": 3,
                        },
                        {
                            "type": "string",
                            "value1": "<p>{{ question }}</p>",
                            "operation": "regex",
                            "value2": "x",
                        },
                    ]
                },
            },
        },
    ]
    report = flowise.convert({"nodes": nodes, "edges": []}, OPTIONS).report
    assert report.not_mapped[0]["id"] == "c" and "regex" in report.not_mapped[0]["reason"]
    nodes[1]["data"]["inputs"]["conditions"].pop()
    edges = [
        {"source": "s", "target": "c"},
        {"source": "c", "target": "s2", "sourceHandle": "c-output-1"},
    ]
    reply = {
        "id": "s2",
        "data": {
            "name": "directReplyAgentflow",
            "inputs": {"directReplyMessage": "<p>hi {{ question }}</p>"},
        },
    }
    spec = flowise.convert({"nodes": [*nodes, reply], "edges": edges}, OPTIONS).spec
    assert node(spec, "c")["metadata"] == {
        "strategy": "rules",
        "rules": [{"when": "double(score) == 3.0", "intent": "0"}],
        "default": "1",
    }
    assert {"from": "c", "to": "s2", "condition": "1"} in spec["edges"]
    assert node(spec, "s2")["metadata"]["template"] == "hi {{ user_input }}"


def test_an_http_request_keeps_its_host_as_a_source_and_leaves_credential_headers_out() -> None:
    request = {
        "type": "http-request",
        "method": "post",
        "url": "https://api.example.com/v1/orders?limit=5",
        "headers": "Authorization: Bearer sk-live-123\nX-Api-Key: k\nAccept: application/json",
        "params": "q:{{#s.q#}}",
        "body": {"type": "none"},
    }
    converted = dify.convert(
        dify_doc([{"id": "h", "data": request}], [("s", "h", "source")]), OPTIONS
    )
    spec, report = converted.spec, converted.report
    http = next(n for n in spec["nodes"] if n["type"] == "http")
    source = next(s for s in spec["sources"] if s["id"] == http["metadata"]["source"])
    assert source == {
        "id": "http_h",
        "kind": "http",
        "config": {"base_url": "https://api.example.com"},
    }
    assert http["metadata"]["method"] == "POST"
    assert http["metadata"]["path"] == "/v1/orders?limit=5"
    assert http["metadata"]["headers"] == {"Accept": "application/json"}
    assert http["metadata"]["query"] == {"q": "{{ q }}"}
    assert "sk-live-123" not in str(spec)
    dropped = [n for n in report.notes if "was left out" in n]
    assert len(dropped) == 2 and "'Authorization'" in dropped[0] and "'X-Api-Key'" in dropped[1]


def test_an_http_request_whose_host_is_a_template_is_not_mapped() -> None:
    request = {"type": "http-request", "method": "get", "url": "https://{{#s.q#}}/x"}
    converted = dify.convert(
        dify_doc([{"id": "h", "data": request}], [("s", "h", "source")]), OPTIONS
    )
    assert [n["id"] for n in converted.report.not_mapped] == ["h"]
    assert "no fixed scheme and host" in converted.report.not_mapped[0]["reason"]


def test_bridging_visits_each_edge_a_bounded_number_of_times() -> None:
    """3,000 dropped nodes in a chain, entered from ten kept nodes at 300 places: each kept
    node leads to the end once (walking the chain again per edge took minutes)."""
    n = 3000
    edges: list[Edge] = [(f"a{j}", f"d{i}", None) for j in range(10) for i in range(0, n, 10)]
    edges += [(f"d{i}", f"d{i + 1}", None) for i in range(n - 1)] + [(f"d{n - 1}", "z", None)]
    kept = {f"a{j}" for j in range(10)} | {"z"}
    assert sorted(bridged(edges, kept)) == [(f"a{j}", "z", None) for j in range(10)]
