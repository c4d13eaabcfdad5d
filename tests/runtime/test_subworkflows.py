"""`workflow` nodes without a database: a resolver over a dict of stored specs."""

import asyncio
from typing import Any

import pytest

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.events import RecordingObserver
from runtime.runner import run_workflow
from runtime.validation import ValidationOptions, ValidationResult, validate_spec
from runtime.validation_workflows import StoredWorkflow


def template_spec(name: str, template: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "say",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": template},
            },
        ],
        "edges": [{"from": "input", "to": "say"}],
        **extra,
    }


def caller_spec(name: str, workflow: str, **meta: Any) -> dict[str, Any]:
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "call", "type": "workflow", "metadata": {"workflow": workflow, **meta}},
        ],
        "edges": [{"from": "input", "to": "call"}],
    }


class Store:
    def __init__(self, **specs: dict[str, Any]) -> None:
        self.specs = {f"wf_{name}": [spec] for name, spec in specs.items()}

    def resolve(self, ref: str, version: int | None) -> StoredWorkflow | None:
        ident = ref if ref in self.specs else f"wf_{ref}"
        versions = self.specs.get(ident)
        if versions is None:
            return None
        number = version or len(versions)
        spec = versions[number - 1] if number <= len(versions) else None
        return StoredWorkflow(ident, ident[3:], number, len(versions), spec)

    def options(self, **extra: Any) -> ValidationOptions:
        return ValidationOptions(resolve_workflow=self.resolve, **extra)


def types(result: ValidationResult) -> list[str]:
    return [e.type for e in result.errors]


def test_a_workflow_node_runs_its_child_and_traces_its_nodes_under_it() -> None:
    store = Store(child=template_spec("child", "hello {{ user_input }}"))
    spec = caller_spec("parent", "child", output={"greeting": "final_output"})
    validated = validate_spec(spec, store.options())
    assert validated.valid, validated.errors
    observer = RecordingObserver()
    outcome = asyncio.run(
        run_workflow(
            compile_workflow(validated), {"user_input": "bob"}, RunContext(observer=observer)
        )
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.final_state["outputs"]["call"] == "hello bob"
    assert outcome.final_state["greeting"] == "hello bob"
    assert [e.node_id for e in observer.finished()] == ["input", "call/input", "call/say", "call"]


def test_a_workflow_node_needs_a_resolver() -> None:
    assert types(validate_spec(caller_spec("p", "child"))) == ["unknown_workflow"]


def test_an_unknown_workflow_and_a_missing_version_are_named() -> None:
    store = Store(child=template_spec("child", "x"))
    assert types(validate_spec(caller_spec("p", "nope"), store.options())) == ["unknown_workflow"]
    result = validate_spec(caller_spec("p", "child", version=4), store.options())
    assert types(result) == ["unknown_workflow_version"]
    assert result.errors[0].path == "/nodes/1/metadata/version"
    assert "versions 1 to 1" in result.errors[0].message


def test_a_cycle_is_reported_with_its_path() -> None:
    store = Store(a=caller_spec("a", "b"), b=caller_spec("b", "a"))
    result = validate_spec(caller_spec("a", "b"), store.options(workflow_path=(("wf_a", "a"),)))
    assert types(result) == ["workflow_cycle"]
    assert "a → b → a" in result.errors[0].message
    itself = validate_spec(caller_spec("a", "a"), store.options(workflow_path=(("wf_a", "a"),)))
    assert types(itself) == ["workflow_cycle"]


def test_depth_is_bounded() -> None:
    store = Store(
        c1=caller_spec("c1", "c2"), c2=caller_spec("c2", "c3"), c3=template_spec("c3", "x")
    )
    assert validate_spec(caller_spec("top", "c1"), store.options()).valid
    result = validate_spec(caller_spec("top", "c1"), store.options(max_workflow_depth=2))
    assert types(result) == ["workflow_depth"]
    assert "top → c1 → c2 → c3" in result.errors[0].message


def test_an_invalid_child_fails_its_caller() -> None:
    store = Store(
        child={"name": "child", "start_node": "x", "nodes": [{"id": "input", "type": "input"}]}
    )
    result = validate_spec(caller_spec("p", "child"), store.options())
    assert types(result) == ["invalid_workflow"]
    assert "not valid now" in result.errors[0].message


@pytest.mark.parametrize("key", ["tokens_used", "outputs"])
def test_output_may_not_write_the_runs_own_keys(key: str) -> None:
    store = Store(child=template_spec("child", "x"))
    result = validate_spec(caller_spec("p", "child", output={key: "final_output"}), store.options())
    assert types(result) == ["invalid_metadata"]


def test_a_checkpointed_run_runs_its_child_without_checkpointing_it() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    store = Store(child=template_spec("child", "hello {{ user_input }}"))
    validated = validate_spec(caller_spec("parent", "child"), store.options())
    outcome = asyncio.run(
        run_workflow(
            compile_workflow(validated),
            {"user_input": "bob"},
            RunContext(),
            checkpointer=InMemorySaver(),
            thread_id="t1",
        )
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.final_state["outputs"]["call"] == "hello bob"


def test_a_cancel_accepted_while_the_child_runs_cancels_the_run() -> None:
    from runtime.context import RunStopped

    store = Store(child=template_spec("child", "x"))
    validated = validate_spec(caller_spec("parent", "child"), store.options())
    asked: list[int] = []

    async def go_on() -> None:
        asked.append(1)
        if len(asked) == 4:  # input, call, call/input: then call/say is refused
            raise RunStopped

    observer = RecordingObserver()
    ctx = RunContext(go_on=go_on, observer=observer)
    outcome = asyncio.run(run_workflow(compile_workflow(validated), {"user_input": "b"}, ctx))
    assert outcome.status == "cancelled", outcome.error
    failed = {e.node_id: e.error for e in observer.finished() if e.status == "failed"}
    assert failed == {
        "call": {"code": "cancelled", "message": "Node 'call' stopped: the run was cancelled."}
    }


class SlowChat:
    """A provider adapter whose answer never comes in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def chat(self, request: Any, on_token: Any = None) -> Any:
        await asyncio.sleep(30)


def test_a_child_with_a_timeout_stops_within_it() -> None:
    slow = template_spec("child", "x", limits={"timeout_seconds": 0.05})
    slow["nodes"][1] = {"id": "say", "type": "llm", "metadata": {"source": "gpt", "prompt": "hi"}}
    slow["sources"] = [
        {"id": "gpt", "kind": "openai", "config": {"model_name": "gpt-4o-mini", "api_key_env": "K"}}
    ]
    store = Store(child=slow)
    validated = validate_spec(caller_spec("parent", "child"), store.options())
    assert validated.valid, validated.errors
    ctx = RunContext(env=lambda name: "sk-test", providers={"openai": SlowChat})
    outcome = asyncio.run(run_workflow(compile_workflow(validated), {"user_input": "b"}, ctx))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert (outcome.error["code"], outcome.error["node_id"]) == ("timeout", "call")
    assert "limits.timeout_seconds (0.05 s)" in outcome.error["message"]
    assert outcome.execution_time < 5


def test_an_input_is_a_state_key_or_a_template() -> None:
    store = Store(child=template_spec("child", "x"))
    bad = caller_spec("p", "child", input={"user_input": "not a key"})
    result = validate_spec(bad, store.options())
    assert types(result) == ["invalid_metadata"]
    assert result.errors[0].path == "/nodes/1/metadata/input"
    good = caller_spec("p", "child", input={"user_input": "topic", "b": "{{ topic }}!"})
    assert validate_spec(good, store.options()).valid
