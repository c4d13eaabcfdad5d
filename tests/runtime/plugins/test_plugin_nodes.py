"""A plugin node runs like a built-in one: validated by its model, timed out, traced, redacted,
its result in `outputs` and its result key; its failures are named, never `internal_error`."""

import asyncio
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.events import RecordingObserver
from runtime.plugins.loader import GROUP, load_plugins
from runtime.plugins.registry import activate, metadata_models
from runtime.ratelimit import MemoryLimiter
from runtime.redaction import Redactor
from runtime.runner import RunOutcome, run_workflow
from runtime.spec import workflow_spec_json_schema
from runtime.validation import ValidationOptions, ValidationResult, validate_spec

SECRET = "sk-plugin-secret-0123456789"


@pytest.fixture(autouse=True)
def plugins() -> Iterator[None]:
    found = [EntryPoint("greet", "tests.runtime.plugins.sample:GREET", GROUP)]
    previous = activate(load_plugins(["greet"], found=lambda: found))
    yield
    activate(previous)


def spec(**meta: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input", "metadata": {"required": []}},
            {"id": "hello", "type": "greet", "metadata": meta},
        ],
        "edges": [{"from": "input", "to": "hello"}],
    }


def validate(raw: dict[str, Any]) -> ValidationResult:
    return validate_spec(raw, ValidationOptions(node_types=metadata_models()))


def run(
    raw: dict[str, Any], state: dict[str, Any], **ctx_args: Any
) -> tuple[RunOutcome, RecordingObserver]:
    validated = validate(raw)
    assert validated.valid, validated.to_dict()["errors"]
    workflow = compile_workflow(validated, state_keys=state.keys())
    observer = RecordingObserver()
    ctx = RunContext(observer=observer, redactor=Redactor.of({"KEY": SECRET}), **ctx_args)
    return asyncio.run(run_workflow(workflow, state, ctx)), observer


def test_a_plugin_node_writes_outputs_and_its_result_key_and_is_traced() -> None:
    outcome, observer = run(spec(), {"name": "Ada"})
    assert outcome.status == "succeeded", outcome.error
    expected = {"greeting": "Hello Ada", "seen_intent": "tampered"}
    assert outcome.final_state["outputs"]["hello"] == expected
    assert outcome.final_state["greeting"] == expected
    assert outcome.final_state.get("intent") is None  # the plugin changed only its copy
    (finished,) = [e for e in observer.finished() if e.node_id == "hello"]
    assert (finished.node_type, finished.status) == ("greet", "succeeded")
    assert finished.details["input"] == {"greeting": "Hello Ada"}
    assert finished.details["plugin"] == "greet"


def test_output_key_moves_the_result() -> None:
    outcome, _ = run(spec(output_key="salute"), {"name": "Ada"})
    assert outcome.final_state["salute"]["greeting"] == "Hello Ada"
    assert "greeting" not in outcome.final_state


def test_an_exception_in_a_plugin_is_a_plugin_error_naming_the_plugin() -> None:
    outcome, observer = run(spec(fail="exception"), {"name": "Ada"})
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error["code"] == "plugin_error"
    assert outcome.error["message"] == (
        "Node 'hello' failed in plugin 'greet' (tests.runtime.plugins.sample): "
        "KeyError: 'no luck with Hello Ada'"
    )
    assert observer.finished()[-1].error == {
        "code": "plugin_error",
        "message": outcome.error["message"],
    }


def test_a_plugin_may_fail_with_its_own_message() -> None:
    outcome, _ = run(spec(fail="plugin_error"), {"name": "Ada"})
    assert outcome.error is not None
    assert outcome.error["code"] == "plugin_error"
    assert outcome.error["message"] == "The greeting is not polite enough; add 'please'."


def test_a_result_that_is_not_json_is_a_plugin_error() -> None:
    outcome, _ = run(spec(fail="not_json"), {"name": "Ada"})
    assert outcome.error is not None
    assert outcome.error["code"] == "plugin_error"
    assert "returned a result that is not JSON" in outcome.error["message"]


def test_on_error_continue_records_the_plugin_error_and_goes_on() -> None:
    outcome, _ = run(spec(fail="exception", on_error="continue"), {"name": "Ada"})
    assert outcome.status == "succeeded"
    assert outcome.final_state["errors"][0]["code"] == "plugin_error"
    assert outcome.final_state["outputs"]["hello"] is None


def test_a_plugin_node_is_stopped_at_its_timeout() -> None:
    outcome, _ = run(spec(sleep=5.0, timeout_seconds=0.2), {"name": "Ada"})
    assert outcome.error is not None
    assert outcome.error["code"] == "timeout"
    assert outcome.execution_time < 2


def test_a_queue_into_a_plugin_node_limits_it_like_any_node() -> None:
    raw = spec()
    lane = {"max_requests_per_minute": 1}
    raw["queues"] = [{"id": "lane", "from": "input", "to": "hello", "bandwidth": lane}]
    limiter = MemoryLimiter()
    first, _ = run(raw, {"name": "Ada"}, limiter=limiter, max_rate_wait=0)
    assert first.status == "succeeded"
    second, observer = run(raw, {"name": "Ada"}, limiter=limiter, max_rate_wait=0)
    assert second.error is not None
    assert (second.error["code"], second.error["node_id"]) == ("rate_limited", "hello")
    assert [(e.node_type, e.status) for e in observer.finished()][-1] == ("greet", "failed")


def test_a_secret_in_a_plugins_result_or_error_is_redacted() -> None:
    done, observer = run(spec(), {"name": SECRET})
    assert SECRET not in repr(done.final_state)
    assert SECRET not in repr([e.output for e in observer.finished()])
    failed, _ = run(spec(fail="exception"), {"name": SECRET})
    assert failed.error is not None
    assert SECRET not in failed.error["message"]
    assert "[redacted:KEY]" in failed.error["message"]


def test_bad_plugin_metadata_is_invalid_metadata_at_its_path() -> None:
    result = validate(spec(sleep="long", colour="red"))
    found = {(e.type, e.path) for e in result.errors}
    assert found == {
        ("invalid_metadata", "/nodes/1/metadata/sleep"),
        ("invalid_metadata", "/nodes/1/metadata/colour"),
    }


def test_a_plugin_template_is_checked_like_a_built_in_one() -> None:
    result = validate(spec(greeting="{% include 'x' %}"))
    assert [(e.type, e.path) for e in result.errors] == [
        ("invalid_template", "/nodes/1/metadata/greeting")
    ]


def test_a_type_of_a_plugin_not_enabled_is_unknown() -> None:
    result = validate_spec(spec())  # no plugin types given
    assert [e.type for e in result.errors] == ["unknown_node_type"]
    assert "registered plugin" in result.errors[0].message


def test_the_json_schema_holds_each_plugins_metadata_model() -> None:
    schema = workflow_spec_json_schema(metadata_models())
    assert schema["$defs"]["plugin.greet"]["properties"]["greeting"]["default"] == (
        "Hello {{ name }}"
    )
    assert "greet" in schema["$defs"]["Node"]["properties"]["type"]["examples"]
    assert "plugin.greet" not in workflow_spec_json_schema()["$defs"]
