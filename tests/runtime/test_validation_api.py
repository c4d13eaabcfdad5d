"""validate_spec's contract with its callers: inputs, options, result shape, published schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from runtime.node_metadata import NODE_METADATA, NodeMetadata
from runtime.spec import SourceSpec, WorkflowSpec, workflow_spec_json_schema
from runtime.validation import ValidationOptions, validate_spec
from tests.runtime.factories import node, support_desk

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid(path: Path) -> None:
    result = validate_spec(path.read_bytes())
    assert result.to_dict() == {"valid": True, "errors": [], "warnings": []}
    assert isinstance(result.spec, WorkflowSpec)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 6


def test_a_dict_and_its_json_text_give_the_same_errors_but_only_text_has_lines() -> None:
    spec = support_desk()
    spec["edges"][3]["to"] = "writter"
    from_dict = validate_spec(spec)
    from_text = validate_spec(json.dumps(spec, indent=1).encode())
    assert [(e.type, e.path, e.message) for e in from_dict.errors] == [
        (e.type, e.path, e.message) for e in from_text.errors
    ]
    assert from_dict.errors[0].line is None
    assert from_text.errors[0].line is not None


def test_to_dict_has_the_documented_shape() -> None:
    spec = support_desk()
    spec["start_node"] = "nope"
    body = validate_spec(json.dumps(spec)).to_dict()
    assert set(body) == {"valid", "errors", "warnings"}
    assert body["valid"] is False
    assert set(body["errors"][0]) == {"type", "message", "node_id", "path", "line", "column"}


def test_the_parsed_spec_aliases_from() -> None:
    result = validate_spec(support_desk())
    assert result.spec is not None
    assert result.spec.edges[0].from_ == "input"
    assert result.spec.model_dump(by_alias=True)["edges"][0]["from"] == "input"
    assert set(result.metadata) == {n["id"] for n in support_desk()["nodes"]}
    assert set(result.sources) == {"gpt", "dalle", "shop"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[1, 2]", "not an array"),
        ('"spec"', "not a string"),
        ("null", "not null"),
        ("42", "not a number"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"name": NaN}', "not valid JSON"),
        ('{"name": 1' + "0" * 5000 + "}", "not valid JSON"),
    ],
)
def test_it_answers_a_body_that_is_not_an_object_with_an_error(
    body: str | bytes, expected: str
) -> None:
    result = validate_spec(body)
    assert [e.type for e in result.errors] == ["schema"]
    assert expected in result.errors[0].message


def test_it_reports_where_json_text_breaks() -> None:
    result = validate_spec('{\n  "name": "x",\n  "nodes": [,]\n}')
    error = result.errors[0]
    assert (error.type, error.line, error.column) == ("schema", 3, 13)


def test_it_survives_json_nested_far_deeper_than_python_recurses() -> None:
    result = validate_spec("[" * 200_000 + "]" * 200_000)
    assert [e.type for e in result.errors] == ["spec_too_large"]


def test_a_stored_source_is_found_through_the_resolver() -> None:
    spec = support_desk()
    stored = spec.pop("sources")
    by_id = {s["id"]: SourceSpec.model_validate(s) for s in stored}
    calls: list[str] = []

    def resolve(source_id: str) -> SourceSpec | None:
        calls.append(source_id)
        return by_id.get(source_id)

    result = validate_spec(spec, options=ValidationOptions(resolve_source=resolve))
    assert result.valid, result.to_dict()
    assert sorted(calls) == ["dalle", "gpt", "shop"]
    assert result.sources["shop"].kind == "postgres"


def test_an_inline_source_wins_over_a_stored_one() -> None:
    wrong = SourceSpec.model_validate({"id": "gpt", "kind": "sqlite", "config": {"path": "x"}})
    result = validate_spec(
        support_desk(), options=ValidationOptions(resolve_source=lambda _: wrong)
    )
    assert result.valid, result.to_dict()


def test_a_stored_source_of_the_wrong_kind_is_a_mismatch() -> None:
    spec = support_desk()
    spec["sources"] = spec["sources"][1:]
    wrong = SourceSpec.model_validate({"id": "gpt", "kind": "sqlite", "config": {"path": "x"}})
    result = validate_spec(spec, options=ValidationOptions(resolve_source=lambda _: wrong))
    assert [e.type for e in result.errors] == ["source_kind_mismatch"]


def test_end_is_accepted_as_an_edge_target() -> None:
    spec = support_desk()
    spec["edges"].append({"from": "answer", "to": "END"})
    assert validate_spec(spec).valid


def test_a_node_cannot_be_called_end() -> None:
    spec = support_desk()
    spec["nodes"].append({"id": "END", "type": "input"})
    result = validate_spec(spec)
    assert any(e.type == "schema" and e.path == "/nodes/6/id" for e in result.errors)


class TranslateMetadata(NodeMetadata):
    target_language: str
    text: str

    def templates(self) -> Any:
        yield ("text",), self.text


class PlainPluginConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int


def test_plugin_node_types_are_validated_by_their_own_model() -> None:
    spec = support_desk()
    spec["nodes"].append(
        {
            "id": "fr",
            "type": "translate",
            "metadata": {"target_language": "fr", "text": "{{ x._y }}"},
        }
    )
    spec["nodes"].append({"id": "plain", "type": "plain", "metadata": {"level": "high"}})
    spec["edges"] += [{"from": "answer", "to": "fr"}, {"from": "fr", "to": "plain"}]
    types: dict[str, type[BaseModel]] = {"translate": TranslateMetadata, "plain": PlainPluginConfig}
    result = validate_spec(spec, options=ValidationOptions(node_types=types))
    assert [(e.type, e.node_id) for e in result.errors] == [
        ("invalid_metadata", "plain"),
        ("invalid_template", "fr"),
    ] or sorted((e.type, e.node_id or "") for e in result.errors) == [
        ("invalid_metadata", "plain"),
        ("invalid_template", "fr"),
    ]
    assert validate_spec(spec).errors[0].type == "unknown_node_type"


def test_a_plugin_cannot_replace_a_built_in_type() -> None:
    result = validate_spec(
        support_desk(), options=ValidationOptions(node_types={"llm": PlainPluginConfig})
    )
    assert result.valid


def test_only_node_reports_that_nodes_metadata_and_edges() -> None:
    spec = support_desk()
    node(spec, "writer")["metadata"]["temperature"] = 9
    node(spec, "orders")["metadata"]["max_rows"] = 0
    spec["edges"].append({"from": "orders", "to": "ordrs"})  # another node's edge
    spec["edges"][6]["condition"] = "x"  # out of the writer
    result = validate_spec(spec, options=ValidationOptions(only_node="writer"))
    assert sorted((e.type, e.path) for e in result.errors) == [
        ("invalid_condition", "/edges/6/condition"),
        ("invalid_metadata", "/nodes/2/metadata/temperature"),
    ]
    assert result.spec is None


def test_only_node_with_an_unknown_id_says_so() -> None:
    result = validate_spec(support_desk(), options=ValidationOptions(only_node="ghost"))
    assert [e.type for e in result.errors] == ["missing_node"]


def test_every_problem_is_reported_in_one_pass() -> None:
    spec = support_desk()
    spec["edges"].append({"from": "orders", "to": "ordrs"})
    node(spec, "writer")["metadata"]["temperature"] = 9
    node(spec, "illustrator")["metadata"]["prompt"] = "{% for %}"
    spec["sources"][0]["config"]["api_key"] = "sk"
    spec["queues"][0]["bandwidth"] = {"max_requests_per_minute": 0}
    node(spec, "answer")["type"] = "merge"
    types = sorted(e.type for e in validate_spec(spec).errors)
    assert types == [
        "invalid_metadata",
        "invalid_queue",
        "invalid_template",
        "literal_secret",
        "missing_node",
        "unknown_node_type",
    ]


def test_the_json_schema_describes_metadata_and_configs() -> None:
    schema = workflow_spec_json_schema()
    defs = schema["$defs"]
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"LLMMetadata", "RouterMetadata", "OpenAIConfig", "HTTPConfig"} <= set(defs)
    assert "from" in defs["Edge"]["properties"]
    assert len(defs["Node"]["allOf"]) == len(NODE_METADATA)  # one per built-in type
    schema["title"] = "changed"
    assert workflow_spec_json_schema()["title"] == "WorkflowSpec"  # callers get a copy


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_fits_the_published_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(workflow_spec_json_schema()).validate(
        json.loads(path.read_text())
    )


def test_the_published_schema_rejects_bad_metadata() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    spec = support_desk()
    node(spec, "writer")["metadata"]["temprature"] = 1
    validator = jsonschema.Draft202012Validator(workflow_spec_json_schema())
    assert not validator.is_valid(spec)
