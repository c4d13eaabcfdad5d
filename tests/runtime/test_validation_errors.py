"""Each error type of SPEC §1, produced from a mistake a user could plausibly make.

Specs are sent as JSON text, so every error must also carry the line of the offending value; the
expected line is found by searching the text, independently of the validator's own scanner.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.runtime.factories import line_of, node, only, support_desk, validate_text


def test_the_base_spec_is_valid() -> None:
    result, _ = validate_text(support_desk())
    assert result.valid, result.to_dict()
    assert result.warnings == []


def test_it_reports_a_wrong_type_as_a_schema_error() -> None:
    spec = support_desk()
    spec["limits"] = {"timeout_seconds": "sixty"}
    result, text = validate_text(spec)
    error = only(result, "schema")
    assert error.path == "/limits/timeout_seconds"
    assert error.node_id is None
    assert error.line == line_of(text, '"sixty"')
    assert "timeout_seconds" in error.message


def test_it_reports_a_missing_field_at_its_object() -> None:
    spec = support_desk()
    del node(spec, "answer")["type"]
    result, text = validate_text(spec)
    error = only(result, "schema")
    assert (error.path, error.node_id) == ("/nodes/5/type", "answer")
    assert error.line == line_of(text, '"id": "answer"') - 1  # the node's opening brace
    assert "missing the required field 'type'" in error.message


def test_it_reports_an_unknown_top_level_field() -> None:
    spec = support_desk()
    spec["start"] = "input"
    result, text = validate_text(spec)
    error = only(result, "schema")
    assert error.path == "/start"
    assert error.line == line_of(text, '"start":')


def test_it_rejects_two_nodes_with_one_id() -> None:
    spec = support_desk()
    node(spec, "answer")["id"] = "writer"
    result, text = validate_text(spec)
    error = only(result, "duplicate_id")
    assert (error.path, error.node_id) == ("/nodes/5/id", "writer")
    assert error.line == text.count("\n", 0, text.rindex('"id": "writer"')) + 1
    assert "nodes[2] and nodes[5]" in error.message


def test_it_rejects_duplicate_source_and_queue_ids() -> None:
    spec = support_desk()
    spec["sources"][1]["id"] = "gpt"
    spec["queues"].append({**spec["queues"][0], "to": "orders"})
    result, _ = validate_text(spec)
    paths = {e.path for e in result.errors if e.type == "duplicate_id"}
    assert paths == {"/sources/1/id", "/queues/1/id"}


def test_it_rejects_an_edge_to_an_unknown_node() -> None:
    spec = support_desk()
    spec["edges"][3]["to"] = "writter"
    result, text = validate_text(spec)
    error = only(result, "missing_node")
    assert (error.path, error.node_id) == ("/edges/3/to", "router")
    assert error.line == line_of(text, '"writter"')
    assert "'writter', which is not a node" in error.message
    assert "Known nodes: input, router, writer" in error.message
    assert "Did you mean 'writer'?" in error.message


def test_it_rejects_a_start_node_that_is_not_a_node() -> None:
    spec = support_desk()
    spec["start_node"] = "start"
    result, text = validate_text(spec)
    error = next(e for e in result.errors if e.type == "missing_node")
    assert error.path == "/start_node"
    assert error.line == line_of(text, '"start_node"')


def test_it_rejects_a_queue_end_that_is_not_a_node() -> None:
    spec = support_desk()
    spec["queues"][0]["to"] = "writer2"
    result, text = validate_text(spec)
    error = only(result, "missing_node")
    assert error.path == "/queues/0/to"
    assert error.line == line_of(text, '"writer2"')


def test_it_rejects_an_unknown_node_type() -> None:
    spec = support_desk()
    node(spec, "writer")["type"] = "openai"
    result, text = validate_text(spec)
    error = only(result, "unknown_node_type")
    assert (error.path, error.node_id) == ("/nodes/2/type", "writer")
    assert error.line == line_of(text, '"openai"')
    assert (
        "Known types: aggregator, approval, db, http, image, input, llm, router, workflow"
        in error.message
    )


def test_it_rejects_metadata_that_does_not_fit_the_type() -> None:
    spec = support_desk()
    node(spec, "writer")["metadata"]["temperature"] = 7
    result, text = validate_text(spec)
    error = only(result, "invalid_metadata")
    assert (error.path, error.node_id) == ("/nodes/2/metadata/temperature", "writer")
    assert error.line == line_of(text, '"temperature": 7')
    assert "less than or equal to 2" in error.message


def test_it_suggests_the_field_a_typo_meant() -> None:
    spec = support_desk()
    node(spec, "writer")["metadata"]["max_token"] = 300
    result, _ = validate_text(spec)
    error = only(result, "invalid_metadata")
    assert error.path == "/nodes/2/metadata/max_token"
    assert "Did you mean 'max_tokens'?" in error.message


def test_it_reports_a_router_without_strategy_at_the_strategy() -> None:
    spec = support_desk()
    del node(spec, "router")["metadata"]["strategy"]
    result, _ = validate_text(spec)
    error = only(result, "invalid_metadata")
    assert (error.path, error.node_id) == ("/nodes/1/metadata/strategy", "router")


def test_a_rules_router_without_default_is_told_of_the_default_not_its_rules() -> None:
    spec = support_desk()
    node(spec, "router")["metadata"] = {
        "strategy": "rules",
        "rules": [{"when": "user_input != ''", "intent": "billing"}],
    }
    result, _ = validate_text(spec)
    error = only(result, "invalid_metadata")
    assert error.path == "/nodes/1/metadata/default"
    assert "missing the required field 'metadata.default'" in error.message
    node(spec, "router")["metadata"] = {"strategy": "rules", "rules": [{}], "default": "x"}
    nested = [e.path for e in validate_text(spec)[0].errors]
    assert "/nodes/1/metadata/rules/0/intent" in nested  # a key named like the tag still is one


def test_a_metadata_field_beside_the_metadata_says_where_it_belongs() -> None:
    spec = support_desk()
    node(spec, "writer")["timeout_seconds"] = 5
    result, _ = validate_text(spec)
    error = only(result, "schema")
    assert error.path == "/nodes/2/timeout_seconds"
    assert "beside its metadata: it belongs inside it" in error.message
    assert "Did you mean 'timeout_seconds'" not in error.message


def test_it_reports_a_db_query_that_writes() -> None:
    spec = support_desk()
    node(spec, "orders")["metadata"]["query"] = "DELETE FROM orders; SELECT 1"
    result, _ = validate_text(spec)
    error = only(result, "invalid_metadata")
    assert error.path == "/nodes/4/metadata/query"
    assert "more than one statement" in error.message


def test_it_checks_image_size_against_the_model() -> None:
    spec = support_desk()
    node(spec, "illustrator")["metadata"]["size"] = "1792x1024"
    result, text = validate_text(spec)
    error = only(result, "invalid_metadata")
    assert (error.path, error.node_id) == ("/nodes/3/metadata/size", "illustrator")
    assert error.line == line_of(text, '"1792x1024"')
    assert "gpt-image-1" in error.message


def test_it_accepts_dalle_3_sizes_and_standard_quality() -> None:
    spec = support_desk()
    spec["sources"][1]["config"]["model_name"] = "dall-e-3"
    node(spec, "illustrator")["metadata"].update(size="1792x1024", quality="standard")
    result, _ = validate_text(spec)
    assert result.valid, result.to_dict()


def test_it_rejects_a_source_that_does_not_exist() -> None:
    spec = support_desk()
    node(spec, "writer")["metadata"]["source"] = "gtp"
    result, text = validate_text(spec)
    error = only(result, "unknown_source")
    assert (error.path, error.node_id) == ("/nodes/2/metadata/source", "writer")
    assert error.line == line_of(text, '"gtp"')
    assert "Did you mean 'gpt'?" in error.message


def test_it_rejects_an_llm_node_on_a_database_source() -> None:
    spec = support_desk()
    node(spec, "writer")["metadata"]["source"] = "shop"
    result, text = validate_text(spec)
    error = only(result, "source_kind_mismatch")
    assert (error.path, error.node_id) == ("/nodes/2/metadata/source", "writer")
    assert error.line == line_of(text, '"source": "shop"')
    assert "a postgres source" in error.message
    assert "anthropic, azure_openai, google, openai" in error.message


def test_it_rejects_a_literal_api_key_without_echoing_it() -> None:
    spec = support_desk()
    spec["sources"][0]["config"]["api_key"] = "sk-live-1234567890"
    result, text = validate_text(spec)
    error = only(result, "literal_secret")
    assert error.path == "/sources/0/config/api_key"
    assert error.line == line_of(text, '"api_key":')
    assert '"api_key_env"' in error.message
    assert "sk-live" not in str(result.to_dict())
    assert [e.type for e in result.errors] == ["literal_secret"]  # not also a schema error


def test_it_rejects_a_literal_password_in_a_connection_string_field() -> None:
    spec = support_desk()
    spec["sources"][2]["config"] = {"connection_string": "postgres://u:pw@db/shop"}
    result, _ = validate_text(spec)
    secret = only(result, "literal_secret")
    assert "connection_string_env" in secret.message
    assert "pw@db" not in str(result.to_dict())


def test_it_rejects_a_credential_in_an_http_header() -> None:
    spec = support_desk()
    spec["sources"].append(
        {
            "id": "crm",
            "kind": "http",
            "config": {
                "base_url": "https://crm.example.com",
                "headers": {"Authorization": "Bearer x"},
            },
        }
    )
    result, _ = validate_text(spec)
    error = only(result, "literal_secret")
    assert error.path == "/sources/3/config/headers/Authorization"


def test_it_rejects_the_platforms_own_variables() -> None:
    spec = support_desk()
    spec["sources"][2]["config"]["connection_string_env"] = "DATABASE_URL"
    spec["sources"][0]["config"]["api_key_env"] = "DJANGO_SECRET_KEY"
    result, text = validate_text(spec)
    errors = [e for e in result.errors if e.type == "forbidden_secret_ref"]
    assert [e.path for e in errors] == [
        "/sources/0/config/api_key_env",
        "/sources/2/config/connection_string_env",
    ]
    assert errors[1].line == line_of(text, '"DATABASE_URL"')


def test_it_rejects_a_variable_the_tenant_was_not_granted() -> None:
    spec = support_desk()
    allowed = {"OPENAI_API_KEY"}.__contains__
    result, _ = validate_text(spec, env_allowed=allowed)
    error = only(result, "forbidden_secret_ref")
    assert error.path == "/sources/2/config/connection_string_env"
    assert "SHOP_DB_URL" in error.message


def test_a_grant_never_covers_the_platforms_own_variables() -> None:
    spec = support_desk()
    spec["sources"][0]["config"]["api_key_env"] = "AGENTFLOW_INTERNAL_SIGNING_KEY"
    result, _ = validate_text(spec, env_allowed=lambda name: True)
    assert only(result, "forbidden_secret_ref").path == "/sources/0/config/api_key_env"


def test_it_rejects_a_condition_the_router_never_produces() -> None:
    spec = support_desk()
    spec["edges"][1]["condition"] = "imgae"
    result, text = validate_text(spec)
    error = only(result, "invalid_condition")
    assert (error.path, error.node_id) == ("/edges/1/condition", "router")
    assert error.line == line_of(text, '"imgae"')
    assert "It can produce: data, image, text" in error.message


def test_it_rejects_a_condition_on_an_edge_out_of_a_non_router() -> None:
    spec = support_desk()
    spec["edges"][6]["condition"] = "done"
    result, text = validate_text(spec)
    error = only(result, "invalid_condition")
    assert (error.path, error.node_id) == ("/edges/6/condition", "writer")
    assert error.line == line_of(text, '"done"')
    assert "not a router" in error.message


def test_it_rejects_two_routes_for_one_intent() -> None:
    spec = support_desk()
    spec["edges"][3]["condition"] = "image"
    result, _ = validate_text(spec)
    error = only(result, "invalid_condition")
    assert error.path == "/edges/3/condition"
    assert "repeats the condition 'image' of edge 1" in error.message


def test_it_rejects_two_default_routes_beside_conditional_ones() -> None:
    spec = support_desk()
    spec["edges"].append({"from": "router", "to": "answer"})
    result, text = validate_text(spec)
    error = only(result, "invalid_condition")
    assert (error.path, error.node_id) == ("/edges/7", "router")
    assert error.line == line_of(text, '"to": "answer"\n    }\n  ],') - 2


def test_fan_out_of_unconditional_edges_is_allowed() -> None:
    spec = support_desk()
    spec["edges"][1:4] = [{"from": "router", "to": t} for t in ("illustrator", "orders", "writer")]
    result, _ = validate_text(spec)
    assert result.valid, result.to_dict()


def test_it_rejects_a_cycle_without_a_loop_bound() -> None:
    spec = support_desk()
    spec["edges"].append({"from": "answer", "to": "router"})
    result, text = validate_text(spec)
    error = only(result, "cycle")
    assert (error.path, error.node_id) == ("/edges/7", "router")
    assert (
        "router → writer → answer → router" in error.message or "answer → router" in error.message
    )
    assert error.line == line_of(text, '"from": "answer",\n      "to": "router"') - 1


def test_a_loop_bound_on_an_edge_of_the_cycle_permits_it() -> None:
    spec = support_desk()
    spec["edges"].append({"from": "answer", "to": "router", "loop": {"max_iterations": 3}})
    result, _ = validate_text(spec)
    assert result.valid, result.to_dict()


def test_it_reports_an_unreachable_node() -> None:
    spec = support_desk()
    spec["edges"] = [e for e in spec["edges"] if e["to"] != "illustrator"]
    result, text = validate_text(spec)
    error = only(result, "orphan_node")
    assert (error.path, error.node_id) == ("/nodes/3", "illustrator")
    assert error.line == line_of(text, '"id": "illustrator"') - 1


def test_allow_orphans_turns_orphans_into_warnings() -> None:
    spec = support_desk()
    spec["edges"] = [e for e in spec["edges"] if e["to"] != "illustrator"]
    spec["allow_orphans"] = True
    result, _ = validate_text(spec)
    assert result.valid
    assert [(w.type, w.node_id) for w in result.warnings] == [("orphan_node", "illustrator")]


def test_it_refuses_a_template_that_reads_private_attributes() -> None:
    spec = support_desk()
    node(spec, "writer")["metadata"]["prompt"] = "{{ user_input.__class__.__mro__ }}"
    result, text = validate_text(spec)
    error = only(result, "invalid_template")
    assert (error.path, error.node_id) == ("/nodes/2/metadata/prompt", "writer")
    assert error.line == line_of(text, "__mro__")
    assert "names starting with '_' are not readable" in error.message


def test_it_refuses_a_template_that_does_not_parse() -> None:
    spec = support_desk()
    node(spec, "orders")["metadata"]["params"]["email"] = "{{ metadata.email }"
    result, text = validate_text(spec)
    error = only(result, "invalid_template")
    assert (error.path, error.node_id) == ("/nodes/4/metadata/params/email", "orders")
    assert error.line == line_of(text, "{{ metadata.email }")


def test_it_refuses_a_rule_that_does_not_parse() -> None:
    spec = support_desk()
    node(spec, "router")["metadata"] = {
        "strategy": "rules",
        "rules": [{"when": "size(user_input) >", "intent": "image"}],
        "default": "text",
    }
    spec["edges"][2]["condition"] = "image"
    spec["edges"][2]["to"] = "orders"
    spec["edges"].pop(1)
    result, text = validate_text(spec)
    error = only(result, "invalid_expression")
    assert (error.path, error.node_id) == ("/nodes/1/metadata/rules/0/when", "router")
    assert error.line == line_of(text, "size(user_input) >")
    assert "does not parse at 1:" in error.message


def test_it_rejects_a_queue_on_an_edge_that_does_not_exist() -> None:
    spec = support_desk()
    spec["queues"][0]["from"] = "input"
    result, text = validate_text(spec)
    error = only(result, "invalid_queue")
    assert error.path == "/queues/0"
    assert "no edge goes from 'input' to 'writer'" in error.message
    assert error.line == line_of(text, '"id": "llm-lane"') - 1


def test_it_rejects_a_bandwidth_that_is_not_positive() -> None:
    spec = support_desk()
    spec["queues"][0]["bandwidth"] = {"max_requests_per_minute": 0, "max_tokens_per_minute": -5}
    result, text = validate_text(spec)
    paths = [e.path for e in result.errors if e.type == "invalid_queue"]
    assert paths == [
        "/queues/0/bandwidth/max_requests_per_minute",
        "/queues/0/bandwidth/max_tokens_per_minute",
    ]
    assert result.errors[0].line == line_of(text, '"max_requests_per_minute": 0')


def test_it_rejects_a_spec_over_the_size_limit_before_parsing() -> None:
    spec = support_desk()
    spec["description"] = "x" * 2000
    result, _ = validate_text(spec, max_bytes=1000)
    error = only(result, "spec_too_large")
    assert "limit is 1,000" in error.message


def test_it_rejects_a_spec_over_the_node_limit() -> None:
    result, text = validate_text(support_desk(), max_nodes=5)
    error = only(result, "spec_too_large")
    assert error.path == "/nodes"
    assert error.line == line_of(text, '"nodes"')
    assert len(result.errors) == 1


def test_it_rejects_deep_nesting() -> None:
    spec: dict[str, Any] = support_desk()
    deep: Any = {}
    for _ in range(80):
        deep = {"a": deep}
    node(spec, "input")["metadata"] = {"schema": deep}
    result, _ = validate_text(spec)
    error = only(result, "spec_too_large")
    assert error.path.startswith("/nodes/0/metadata/schema/a/a")


def test_an_input_schema_that_is_not_a_json_schema_is_invalid_metadata() -> None:
    from runtime.validation import validate_spec

    spec = {
        "name": "s",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input", "metadata": {"schema": {"type": "objekt"}}},
        ],
    }
    result = validate_spec(spec)
    assert [(e.type, e.node_id, e.path) for e in result.errors] == [
        ("invalid_metadata", "input", "/nodes/0/metadata/schema")
    ]
    assert "not a valid JSON Schema" in result.errors[0].message


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2pass@api.example.com/v1",
        "https://api.example.com/v1?api_key=sk-live-123",
        "https://api.example.com/v1?x=1&token=abc",
    ],
)
def test_a_credential_inside_a_url_is_a_literal_secret(url: str) -> None:
    from runtime.validation import validate_spec

    spec = {
        "name": "s",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input"}],
        "sources": [
            {
                "id": "gpt",
                "kind": "openai",
                "config": {"model_name": "m", "api_key_env": "K", "base_url": url},
            }
        ],
    }
    result = validate_spec(spec)
    assert [(e.type, e.path) for e in result.errors] == [
        ("literal_secret", "/sources/0/config/base_url")
    ]
    assert "hunter2pass" not in result.errors[0].message
    assert "sk-live-123" not in result.errors[0].message
