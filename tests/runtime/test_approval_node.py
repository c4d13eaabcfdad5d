"""The approval node in the runtime alone: the run waits on its question, keeps its state in
the checkpoint, and an answer given later takes the edge named after it."""

import asyncio
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.events import NodeFinished, RecordingObserver
from runtime.runner import FAILED, SUCCEEDED, WAITING, RunOutcome, run_workflow
from runtime.validation import validate_spec


def approval_spec(**meta: Any) -> dict[str, Any]:
    return {
        "name": "review",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input", "metadata": {}},
            {
                "id": "review",
                "type": "approval",
                "metadata": {"question": "Publish '{{ user_input }}'?", **meta},
            },
            {
                "id": "publish",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "published {{ user_input }}"},
            },
            {
                "id": "discard",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": "discarded"},
            },
        ],
        "edges": [
            {"from": "input", "to": "review"},
            {"from": "review", "to": "publish", "condition": "approve"},
            {"from": "review", "to": "discard", "condition": "reject"},
        ],
    }


def _run(
    spec: dict[str, Any], saver: Any, resume: tuple[str, Any] | None = None
) -> tuple[RunOutcome, RecordingObserver]:
    validated = validate_spec(spec)
    assert validated.valid, validated.errors
    workflow = compile_workflow(validated)
    observer = RecordingObserver()
    ctx = RunContext(observer=observer)
    outcome = asyncio.run(
        run_workflow(
            workflow,
            {"user_input": "the draft"},
            ctx,
            checkpointer=saver,
            thread_id="t1" if saver else None,
            resume=resume,
        )
    )
    return outcome, observer


def test_the_run_waits_on_the_question_then_the_answer_picks_the_branch() -> None:
    for answer, output in (("approve", "published the draft"), ("reject", "discarded")):
        saver = InMemorySaver()
        waiting, _ = _run(approval_spec(), saver)
        assert waiting.status == WAITING
        assert waiting.waiting is not None
        assert waiting.waiting["question"] == "Publish 'the draft'?"
        assert waiting.waiting["options"] == ["approve", "reject"]
        assert waiting.waiting["node_id"] == "review"
        given = {"answer": answer, "comment": "ok", "by": "key:abc", "at": "now"}
        done, _ = _run(approval_spec(), saver, (waiting.waiting["interrupt_id"], given))
        assert done.status == SUCCEEDED, done.error
        assert done.final_state["final_output"] == output
        assert done.final_state["intent"] == answer
        assert done.final_state["approval"]["comment"] == "ok"


def test_a_waiting_attempt_is_traced_with_its_question() -> None:
    _, observer = _run(approval_spec(), InMemorySaver())
    ends = [e for e in observer.events if isinstance(e, NodeFinished) and e.status == "waiting"]
    assert [e.node_id for e in ends] == ["review"]
    assert ends[0].details["input"]["question"] == "Publish 'the draft'?"


def test_without_a_checkpointer_the_run_fails_saying_it_needs_a_background_run() -> None:
    outcome, _ = _run(approval_spec(), None)
    assert outcome.status == FAILED
    assert outcome.error is not None
    assert outcome.error["code"] == "approval_needs_background"


def test_an_answer_to_no_pending_question_is_not_given_again() -> None:
    saver = InMemorySaver()
    waiting, _ = _run(approval_spec(), saver)
    assert waiting.waiting is not None
    key = waiting.waiting["interrupt_id"]
    done, _ = _run(approval_spec(), saver, (key, {"answer": "approve"}))
    assert done.status == SUCCEEDED
    again, _ = _run(approval_spec(), saver, (key, {"answer": "reject"}))
    assert again.final_state["final_output"] == "published the draft"


def test_validation_checks_options_and_conditions() -> None:
    bad = approval_spec(options=["yes", "yes"])
    assert not validate_spec(bad).valid
    expiry = approval_spec(on_expiry="maybe")
    assert any("on_expiry" in e.message for e in validate_spec(expiry).errors)
    unknown = approval_spec(options=["approve", "hold"])
    errors = validate_spec(unknown).errors
    assert [e.type for e in errors] == ["invalid_condition"]
