"""LLM, router and image nodes through the real SDKs against the local provider servers."""

import asyncio
from typing import Any

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.events import RecordingObserver
from runtime.runner import RunOutcome, run_workflow
from runtime.validation import validate_spec
from tests.fakes.providers import FakeGeminiServer, FakeOpenAIServer

ENV = {"KEY": "sk-test-key-0123456789"}.get
LOCAL = frozenset({"127.0.0.1"})


def one_node(node: dict[str, Any], source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input"}, node],
        "edges": [{"from": "input", "to": node["id"]}, *extra.pop("edges", [])],
        "sources": [source],
        **extra,
    }


def run(
    raw: dict[str, Any], state: dict[str, Any], **ctx: Any
) -> tuple[RunOutcome, RecordingObserver]:
    validated = validate_spec(raw)
    assert validated.valid, validated.to_dict()["errors"]
    observer = RecordingObserver()
    # The fakes run on loopback, which a tenant's provider URL may reach only when trusted.
    context = RunContext(env=ENV, observer=observer, trusted_provider_hosts=LOCAL, **ctx)
    workflow = compile_workflow(validated, state_keys=state.keys())
    return asyncio.run(run_workflow(workflow, state, context)), observer


def openai_source(server: FakeOpenAIServer, **config: Any) -> dict[str, Any]:
    return {
        "id": "gpt",
        "kind": "openai",
        "config": {
            "model_name": "gpt-4o-mini",
            "api_key_env": "KEY",
            "base_url": server.base_url,
            "max_retries": 0,
            **config,
        },
    }


def test_a_streamed_answer_reaches_the_observer_delta_by_delta(openai_server) -> None:
    node = {
        "id": "w",
        "type": "llm",
        "metadata": {"source": "gpt", "prompt": "Say hi to {{ user_input }}", "stream": True},
    }
    outcome, observer = run(one_node(node, openai_source(openai_server)), {"user_input": "Ada"})
    assert outcome.status == "succeeded", outcome.error
    deltas = [delta for node_id, delta in observer.tokens if node_id == "w"]
    assert len(deltas) > 3
    assert "".join(deltas) == outcome.final_state["text_result"] == "echo: Say hi to Ada"
    assert outcome.final_state["tokens_used"] > 0  # usage still reported when streaming
    assert openai_server.last_request.json["stream"] is True


def test_a_429_is_retried_by_the_node_after_retry_after(openai_server) -> None:
    openai_server.script(status=429, headers={"Retry-After": "2"}, message="Rate limit reached")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    node = {
        "id": "w",
        "type": "llm",
        "metadata": {
            "source": "gpt",
            "prompt": "{{ user_input }}",
            "retry": {"max_attempts": 2, "initial_interval": 0.1},
        },
    }
    outcome, observer = run(
        one_node(node, openai_source(openai_server)), {"user_input": "x"}, sleep=sleep
    )
    assert outcome.status == "succeeded"
    attempts = [(e.attempt, e.status) for e in observer.finished() if e.node_id == "w"]
    assert attempts == [(1, "failed"), (2, "succeeded")]
    assert observer.finished()[1].error == {
        "code": "provider_error",
        "message": observer.finished()[1].error["message"],  # type: ignore[index]
    }
    assert "Rate limit reached" in observer.finished()[1].error["message"]  # type: ignore[index]
    assert slept == [2.0]  # the provider's Retry-After, not the shorter backoff


def test_a_400_is_not_retried(openai_server) -> None:
    openai_server.script(times=3, status=400, message="Unsupported parameter: 'foo'")
    node = {
        "id": "w",
        "type": "llm",
        "metadata": {"source": "gpt", "prompt": "hi", "retry": {"max_attempts": 3}},
    }
    outcome, _ = run(one_node(node, openai_source(openai_server)), {"user_input": "x"})
    assert outcome.status == "failed"
    assert outcome.error is not None and "Unsupported parameter" in outcome.error["message"]
    assert len(openai_server.requests) == 1


def test_the_semantic_router_picks_the_nearest_intent(openai_server) -> None:
    router = {
        "id": "r",
        "type": "router",
        "metadata": {
            "strategy": "semantic",
            "source": "gpt",
            "threshold": 0.8,
            "default": "other",
            "examples": {
                "billing": ["refund my invoice payment"],
                "tech": ["the app crashes with an error"],
            },
        },
    }
    source = openai_source(openai_server, model_name="text-embedding-3-small")
    outcome, observer = run(one_node(router, source), {"user_input": "app crashes, error!"})
    assert outcome.final_state["intent"] == "tech", observer.finished()[-1].details
    outcome, _ = run(one_node(router, source), {"user_input": "zzzz qqqq"})
    assert outcome.final_state["intent"] == "other"  # nothing close enough: the default


def test_a_gemini_source_answers_through_google_genai(gemini_server: FakeGeminiServer) -> None:
    node = {
        "id": "w",
        "type": "llm",
        "metadata": {"source": "g", "prompt": "Hi {{ user_input }}", "system": "Be brief."},
    }
    source = {
        "id": "g",
        "kind": "google",
        "config": {
            "model_name": "gemini-2.5-flash",
            "api_key_env": "KEY",
            "base_url": gemini_server.url,
        },
    }
    outcome, _observer = run(one_node(node, source), {"user_input": "Bob"})
    assert outcome.status == "succeeded", outcome.error
    assert outcome.final_state["text_result"] == "echo: Hi Bob"
    assert outcome.final_state["cost"] > 0
    sent = gemini_server.last_request
    assert sent.headers["x-goog-api-key"] == "sk-test-key-0123456789"
    assert "gemini-2.5-flash" in sent.path


def test_an_azure_source_uses_the_deployment_path(openai_server: FakeOpenAIServer) -> None:
    node = {"id": "w", "type": "llm", "metadata": {"source": "az", "prompt": "Hi"}}
    source = {
        "id": "az",
        "kind": "azure_openai",
        "config": {
            "deployment": "prod-gpt",
            "endpoint": openai_server.url,
            "api_version": "2025-04-01",
            "api_key_env": "KEY",
            "max_retries": 0,
        },
    }
    outcome, _ = run(one_node(node, source), {"user_input": "x"})
    assert outcome.status == "succeeded", outcome.error
    sent = openai_server.last_request
    assert sent.path == "/openai/deployments/prod-gpt/chat/completions"
    assert sent.query["api-version"] == "2025-04-01"
    assert sent.headers["api-key"] == "sk-test-key-0123456789"


def test_a_dall_e_url_passes_through_with_the_revised_prompt(openai_server) -> None:
    node = {
        "id": "pic",
        "type": "image",
        "metadata": {"source": "img", "prompt": "a {{ user_input }}", "size": "1024x1024"},
    }
    source = {
        "id": "img",
        "kind": "openai_image",
        "config": {
            "model_name": "dall-e-3",
            "api_key_env": "KEY",
            "base_url": openai_server.base_url,
        },
    }
    outcome, observer = run(one_node(node, source), {"user_input": "red fox"})
    image = outcome.final_state["image_result"]
    assert image["url"].startswith(openai_server.url)
    assert image["revised_prompt"] == "revised: a red fox"
    assert observer.finished()[-1].details["input"] == {"prompt": "a red fox"}  # as sent
    assert image["model"] == "dall-e-3"


def test_a_provider_url_on_a_private_address_is_refused_unless_trusted(openai_server) -> None:
    node = {"id": "w", "type": "llm", "metadata": {"source": "gpt", "prompt": "hi"}}
    for url in (
        openai_server.base_url,
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:9/v1",
        "http://localhost:9/v1",
    ):
        raw = one_node(
            node,
            {
                "id": "gpt",
                "kind": "openai",
                "config": {
                    "model_name": "m",
                    "api_key_env": "KEY",
                    "base_url": url,
                    "max_retries": 0,
                },
            },
        )
        validated = validate_spec(raw)
        context = RunContext(env=ENV)  # no trusted hosts
        workflow = compile_workflow(validated, state_keys=["user_input"])
        outcome = asyncio.run(run_workflow(workflow, {"user_input": "x"}, context))
        assert outcome.status == "failed", url
        assert outcome.error is not None and outcome.error["code"] == "egress_refused", url
    assert openai_server.requests == []  # nothing reached the local server
