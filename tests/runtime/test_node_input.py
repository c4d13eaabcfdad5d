"""What a node attempt was given, as its trace keeps it: redacted, then bounded."""

import asyncio
import json
from pathlib import Path

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.events import RecordingObserver
from runtime.node_input import MAX_INPUT_CHARS, recorded_input
from runtime.nodes import NODE_TYPES
from runtime.providers.http import HTTPSource
from runtime.redaction import Redactor
from runtime.runner import run_workflow
from runtime.validation import validate_spec
from tests.runtime.http.servers import json_reply, serving

EXAMPLE = Path(__file__).parents[2] / "examples" / "http-enrich.json"
SECRET = "sk-secret-0123456789"


def test_the_input_keeps_16_kb_of_text_and_says_how_much_it_cut() -> None:
    value = {"messages": [{"role": "user", "content": "a" * 10_000}] * 2}
    kept = recorded_input(value, lambda v: v)
    first, second = (m["content"] for m in kept["messages"])
    assert first == "a" * 10_000
    left = MAX_INPUT_CHARS - 4 - 10_000 - 4  # both roles count too
    assert second == "a" * left + f"… [truncated: {10_000 - left} more characters]"
    assert len(json.dumps(kept)) < MAX_INPUT_CHARS + 200


def test_a_secret_at_the_cut_is_redacted_whole_before_the_text_is_cut() -> None:
    redactor = Redactor.of({"KEY": SECRET})
    text = "x" * (MAX_INPUT_CHARS - 6) + SECRET
    kept = recorded_input({"query": text}, redactor.value)
    cut = "x" * (MAX_INPUT_CHARS - 6) + "[redac"
    assert kept["query"] == cut + "… [truncated: 8 more characters]"
    assert SECRET[:6] not in kept["query"]


def test_an_http_attempt_records_its_method_and_url_and_never_its_credentials() -> None:
    with serving() as server:
        server.route("/api/customers/c-42", lambda seen: json_reply(200, {"name": "Ada"}))
        raw = json.loads(EXAMPLE.read_text())
        raw["sources"][0]["config"] = {
            "base_url": f"{server.url}/api",
            "allowed_hosts": ["127.0.0.1"],
            "auth_method": "api_key",
            "api_key_env": "CRM_KEY",
            "api_key_query": "key",
        }
        validated = validate_spec(raw)
        assert validated.valid, validated.to_dict()["errors"]
        state = {"user_input": "hi", "metadata": {"customer_id": "c-42"}}
        workflow = compile_workflow(validated, state_keys=state.keys(), node_types=NODE_TYPES)
        observer = RecordingObserver()
        ctx = RunContext(
            providers={"http": HTTPSource},
            env={"CRM_KEY": SECRET}.get,
            trusted_hosts=frozenset({"127.0.0.1"}),
            observer=observer,
        )
        outcome = asyncio.run(run_workflow(workflow, state, ctx))
    assert outcome.status == "succeeded", outcome.error
    assert server.seen[0].path == f"/api/customers/c-42?key={SECRET}"  # it did send the key
    crm = next(e for e in observer.finished() if e.node_id == "crm")
    assert crm.details["input"] == {"method": "GET", "url": f"{server.url}/api/customers/c-42"}
    assert SECRET not in repr(observer.finished())
