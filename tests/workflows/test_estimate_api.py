"""The dry run: /workflows/validate?estimate=true counts a run's tokens and cost, calling nothing,
and its counts match what the provider then bills for the same run."""

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import CountedChat, FakeAnthropicServer, FakeOpenAIServer

pytestmark = pytest.mark.django_db
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
URL = "/api/v1/workflows/validate"
STATES = {
    "support-desk": {"user_input": "How do I change the email address on my account?"},
    "draft-loop": {"user_input": "Our new app lets teams share their notes and plan work faster."},
    "parallel-review": {"user_input": "The moon is made of cheese, said the ancient astronomers."},
}
# The critic classifies the draft's answer, which no estimate can know before the run: its
# figure brackets the real count instead (the draft's own prompt is known exactly).
READS_AN_EARLIER_ANSWER = {("draft-loop", "critic")}


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@pytest.fixture
def counting_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(count_tokens=True) as server:
        yield server


@pytest.fixture
def providers(
    tenant, counting_openai: FakeOpenAIServer, anthropic_server: FakeAnthropicServer, monkeypatch
) -> Iterator[tuple[FakeOpenAIServer, FakeAnthropicServer]]:
    """The examples' sources, unchanged, reach the local servers (AGENTFLOW_PROVIDER_BASE_URLS)."""
    tenant.allowed_env = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SHOP_DATABASE_URL"]
    tenant.save()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    urls = {
        "openai": counting_openai.base_url,
        "openai_image": counting_openai.base_url,
        "anthropic": anthropic_server.url,
    }
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS=urls):
        yield counting_openai, anthropic_server


def estimate(key: IssuedKey, spec: Any, state: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"spec": spec, "initial_state": state or {}}
    answer = client_for(key).post(f"{URL}?estimate=true", body, format="json")
    assert answer.status_code == 200, answer.content
    return dict(answer.json())


def by_node(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["node_id"]: node for node in found["estimate"]["nodes"]}


def node_of(call: CountedChat, spec: dict[str, Any]) -> str:
    """The node that sent `call`: an llm router's system prompt, an llm node's prompt text."""
    system = next((m["content"] for m in call.messages if m["role"] == "system"), "")
    user = next(m["content"] for m in call.messages if m["role"] == "user")
    for node in spec["nodes"]:
        meta = node.get("metadata", {})
        if node["type"] == "router" and meta.get("strategy") == "llm":
            if system.startswith("Classify"):
                return str(node["id"])
        elif node["type"] == "llm" and user.startswith(meta["prompt"].split("{{")[0]):
            return str(node["id"])
    raise AssertionError(f"no node sent {call.messages}")


@pytest.mark.parametrize("name", sorted(STATES))
def test_the_estimate_matches_the_tokens_the_provider_then_reports(
    providers: tuple[FakeOpenAIServer, FakeAnthropicServer], executor_key: IssuedKey, name: str
) -> None:
    openai, anthropic = providers
    spec, state = example(name), STATES[name]
    estimated = by_node(estimate(executor_key, spec, state))
    assert openai.requests == [] and anthropic.requests == []  # the estimate called nothing

    body = {"workflow": spec, "initial_state": state}
    run = client_for(executor_key).post("/api/v1/workflows/execute", body, format="json")
    assert run.status_code == 200 and run.json()["status"] == "success", run.json()
    assert openai.counted, "the run made no OpenAI call"
    for call in openai.counted:
        node = estimated[node_of(call, spec)]
        assert node["tokenizer"] == "o200k_base"
        reported = call.prompt_tokens
        print(f"{name}/{node['node_id']}: estimated {node['prompt_tokens']}", end=" ")
        print(f"(max {node['prompt_tokens_max']}), the provider reported {reported}")
        if (name, node["node_id"]) in READS_AN_EARLIER_ANSWER:
            assert node["prompt_tokens"] <= reported <= node["prompt_tokens_max"]
        else:
            assert abs(node["prompt_tokens"] - reported) <= 0.1 * reported, (node, reported)


def test_an_estimate_calls_no_provider(
    providers: tuple[FakeOpenAIServer, FakeAnthropicServer], viewer_key: IssuedKey
) -> None:
    openai, anthropic = providers
    for name, state in STATES.items():
        estimate(viewer_key, example(name), state)
    assert openai.requests == [] and anthropic.requests == []


def test_prices_come_from_the_operators_table(
    providers: Any, viewer_key: IssuedKey, settings
) -> None:
    settings.AGENTFLOW_PRICES = {"gpt-4o-mini": (1.5, 4.0), "gpt-image-1": (0.0, 0.0)}
    found = estimate(viewer_key, example("support-desk"), STATES["support-desk"])
    writer = by_node(found)["writer"]
    assert writer["price_per_million_tokens"] == {"input": 1.5, "output": 4.0}
    assert writer["completion_tokens_max"] == 300  # the node's max_tokens
    expected = (writer["prompt_tokens"] * 1.5 + 300 * 4.0) / 1_000_000
    assert writer["cost"] == pytest.approx(expected, abs=1e-8)
    dearest = found["estimate"]["most_expensive"]
    assert dearest["nodes"] == ["input", "router", "writer", "answer"]  # images cost 0 here
    assert dearest["cost"] == pytest.approx(expected, abs=1e-8)
    assert dearest["prompt_tokens"] == writer["prompt_tokens"]
    assert dearest["completion_tokens"] == 300


def test_a_router_workflow_has_a_dearest_and_a_cheapest_path(
    providers: Any, viewer_key: IssuedKey
) -> None:
    found = estimate(viewer_key, example("support-desk"), STATES["support-desk"])["estimate"]
    dearest, cheapest = found["most_expensive"], found["cheapest"]
    illustrator = by_node({"estimate": found})["illustrator"]
    assert dearest["nodes"] == ["input", "router", "illustrator", "answer"]  # gpt-image-1
    assert dearest["cost"] == pytest.approx(illustrator["cost_max"], abs=1e-8)
    assert cheapest["nodes"] == ["input", "router", "orders", "answer"]  # no model at all
    assert cheapest["cost"] == 0 and cheapest["total_tokens"] == 0
    assert dearest["cost"] > cheapest["cost"]


def test_a_bounded_loop_counts_its_passes_on_the_dearest_path_only(
    providers: Any, viewer_key: IssuedKey
) -> None:
    found = estimate(viewer_key, example("draft-loop"), STATES["draft-loop"])
    draft, critic = by_node(found)["draft"], by_node(found)["critic"]
    dearest, cheapest = found["estimate"]["most_expensive"], found["estimate"]["cheapest"]
    assert dearest["loop_passes"] == {"critic->draft": 3}
    assert dearest["prompt_tokens"] == 4 * (
        draft["prompt_tokens_max"] + critic["prompt_tokens_max"]
    )
    assert dearest["completion_tokens"] == 4 * (1000 + 20)
    assert cheapest["loop_passes"] == {}
    assert cheapest["prompt_tokens"] == draft["prompt_tokens"] + critic["prompt_tokens"]
    # An earlier answer stands in at the writer's completion bound for the dearest figure.
    assert critic["unknown_inputs"] == ["text_result"]
    assert critic["prompt_tokens_max"] - critic["prompt_tokens"] >= 1000 - 30


def test_a_non_openai_source_is_counted_approximately(
    providers: Any, viewer_key: IssuedKey
) -> None:
    state = STATES["parallel-review"]
    tone = by_node(estimate(viewer_key, example("parallel-review"), state))["tone"]
    assert tone["tokenizer"] == "approximate"
    assert tone["prompt_tokens"] == math.ceil(
        len(f"Describe the tone of: {state['user_input']}") / 4
    )
    assert tone["completion_tokens_max"] == 512  # the source's max_tokens


def test_an_invalid_spec_has_no_estimate(viewer_key: IssuedKey) -> None:
    spec = example("support-desk") | {"start_node": "nowhere"}
    found = estimate(viewer_key, spec, {"user_input": "hi"})
    assert found["valid"] is False
    assert found["estimate"] is None


def test_without_the_flag_the_report_is_unchanged(
    granted_examples: None, viewer_key: IssuedKey
) -> None:
    answer = client_for(viewer_key).post(URL, {"spec": example("draft-loop")}, format="json")
    assert answer.json() == {"valid": True, "errors": [], "warnings": []}
    bare = client_for(viewer_key).post(f"{URL}?estimate=1", example("draft-loop"), format="json")
    assert bare.json()["estimate"]["nodes"][0]["prompt_tokens"] > 0  # a bare spec: state {}


@pytest.fixture
def granted_examples(tenant) -> None:
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()


@pytest.mark.parametrize(
    ("query", "body", "field"),
    [
        ("estimate=maybe", {"spec": {}}, "estimate"),
        ("estimate=true", {"spec": {}, "initial_state": [1]}, "initial_state"),
    ],
)
def test_it_refuses_a_bad_flag_or_initial_state(
    granted_examples: None, viewer_key: IssuedKey, query: str, body: Any, field: str
) -> None:
    body["spec"] = example("draft-loop")
    answer = client_for(viewer_key).post(f"{URL}?{query}", body, format="json")
    assert answer.status_code == 400
    assert field in json.dumps(answer.json())
