"""Recorded provider calls and replays in the runtime alone (no database)."""

import asyncio
from typing import Any

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.events import RecordingObserver
from runtime.providers.base import ChatMessage, ChatRequest
from runtime.replay import Recorded, Replay, request_digest
from runtime.runner import RunOutcome, run_workflow
from runtime.spec import SourceSpec
from runtime.validation import validate_spec
from tests.fakes.providers import FakeOpenAIServer
from tests.runtime.test_nodes_at_the_wire import ENV, LOCAL, one_node, openai_source

SOURCE = SourceSpec(id="gpt", kind="openai", config={"model_name": "m", "api_key_env": "KEY"})
ASKED = ChatRequest(messages=(ChatMessage("user", "hi"),), temperature=0.2)


def chat_calls(server: FakeOpenAIServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


def run(spec: dict[str, Any], recordings: Replay) -> tuple[RunOutcome, RecordingObserver]:
    validated = validate_spec(spec)
    assert validated.valid, validated.to_dict()["errors"]
    observer = RecordingObserver()
    ctx = RunContext(
        env=ENV, observer=observer, trusted_provider_hosts=LOCAL, recordings=recordings
    )
    workflow = compile_workflow(validated, state_keys=["user_input"])
    return asyncio.run(run_workflow(workflow, {"user_input": "Ada"}, ctx)), observer


def test_the_digest_ignores_streaming_and_credential_names_but_not_the_prompt() -> None:
    digest = request_digest("chat", SOURCE, ASKED)
    assert len(digest) == 64
    streamed = ChatRequest(messages=ASKED.messages, temperature=0.2, stream=True)
    assert request_digest("chat", SOURCE, streamed) == digest
    other_key = SourceSpec(id="x", kind="openai", config={"model_name": "m", "api_key_env": "K2"})
    assert request_digest("chat", other_key, ASKED) == digest
    changed = ChatRequest(messages=(ChatMessage("user", "hello"),), temperature=0.2)
    assert request_digest("chat", SOURCE, changed) != digest
    hotter = ChatRequest(messages=ASKED.messages, temperature=0.9)
    assert request_digest("chat", SOURCE, hotter) != digest
    other_model = SourceSpec(id="gpt", kind="openai", config={"model_name": "m2"})
    assert request_digest("chat", other_model, ASKED) != digest


def test_a_digest_recorded_twice_is_answered_in_order_then_not_at_all() -> None:
    recorded = [
        Recorded(node_id="a", digest="d", kind="chat", response={"text": str(n)}) for n in (1, 2)
    ]
    replay = Replay(recorded)
    assert [replay.lookup("a", "d"), replay.lookup("a", "d"), replay.lookup("a", "d")] == [
        {"text": "1"},
        {"text": "2"},
        None,
    ]


def test_pinned_nodes_take_their_own_answers_and_the_others_call_afresh() -> None:
    recorded = [
        Recorded(node_id="a", digest="x", kind="chat", response={"text": "a"}),
        Recorded(node_id="b", digest="y", kind="chat", response={"text": "b"}),
    ]
    replay = Replay(recorded, pinned=frozenset({"a"}), fresh_others=True)
    assert replay.lookup("a", "changed") == {"text": "a"}
    assert replay.lookup("b", "y") is None


def test_a_run_records_its_calls_and_a_replay_answers_them_for_nothing(
    openai_server: FakeOpenAIServer,
) -> None:
    node = {
        "id": "w",
        "type": "llm",
        "metadata": {"source": "gpt", "prompt": "Hi {{ user_input }}"},
    }
    spec = one_node(node, openai_source(openai_server))
    kept: list[Recorded] = []

    async def keep(recorded: Recorded) -> None:
        kept.append(recorded)

    first, _ = run(spec, Replay(sink=keep))
    assert first.status == "succeeded" and chat_calls(openai_server) == 1
    assert [(r["node_id"], r["kind"]) for r in kept] == [("w", "chat")]
    assert kept[0]["response"]["tokens"] == first.tokens_used > 0

    again, observer = run(spec, Replay(list(kept)))
    assert again.status == "succeeded" and chat_calls(openai_server) == 1
    assert again.final_state["text_result"] == first.final_state["text_result"]
    assert again.tokens_used == 0 and again.cost == 0
    (finished,) = [e for e in observer.finished() if e.node_id == "w"]
    assert finished.details["replayed"] is True
    assert finished.details["recorded_tokens"] == first.tokens_used
