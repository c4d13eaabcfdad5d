"""Traces as an operator's collector receives them (the SDK's in-memory exporter, behind the
same scrubbing exporter a real one gets): an async run queued by a request and run by a worker
is one trace, request → run → node → provider call → HTTP, with the GenAI attributes and no
prompt text or key in it."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agentflow_site.observability.tracing import (
    ScrubbingExporter,
    TracingConfig,
    scrubbed,
    setup_tracing,
    start_tracing,
    stop_tracing,
    tracing_config,
)
from executions.models import Execution
from runtime import telemetry
from tests.conftest import client_for, issue_key
from tests.fakes.otlp import FakeCollector
from tests.fakes.providers import FakeOpenAIServer
from tests.observability.runs import (
    API_KEY,
    PROMPT_CANARY,
    finished,
    llm_chain,
    provider_ready,
    queue_stored_run,
    running_worker,
)
from tests.stack import Stack, stack_env, wait_for
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)  # the worker reads on its own connection


def _fresh_connections() -> None:
    """Connections made from now on are traced (a process starts tracing before its first)."""
    for connection in connections.all():
        connection.close()
        if getattr(connection, "pool", None) is not None:
            connection.close_pool()  # type: ignore[attr-defined]


def _trace_with(capture: bool) -> Iterator[InMemorySpanExporter]:
    _fresh_connections()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    scrubbing: Any = ScrubbingExporter(exporter)  # a SpanExporter, duck-typed
    provider.add_span_processor(SimpleSpanProcessor(scrubbing))
    start_tracing(provider, capture_content=capture)
    try:
        yield exporter
    finally:
        stop_tracing()
        provider.shutdown()
        _fresh_connections()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from _trace_with(capture=False)


@pytest.fixture
def spans_with_content() -> Iterator[InMemorySpanExporter]:
    yield from _trace_with(capture=True)


def _run_async(tenant: Any, settings: Any, monkeypatch: Any, server: FakeOpenAIServer) -> str:
    provider_ready(tenant, settings, monkeypatch, server.base_url)
    client = client_for(issue_key(tenant, "developer"))
    _, execution_id = queue_stored_run(client, tenant)
    with running_worker():
        run = finished(execution_id)
    assert run.status == "succeeded", run.error
    return execution_id


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def _parent_of(child: ReadableSpan) -> int:
    assert child.parent is not None, f"{child.name} has no parent"
    return child.parent.span_id


def _text_of(span: ReadableSpan) -> str:
    values = [span.name, span.status.description or "", *map(str, _attrs(span).values())]
    for event in span.events:
        values += map(str, (event.attributes or {}).values())
    return json.dumps(values)


def test_an_async_run_is_one_trace_from_the_request_to_each_provider_call(
    spans: InMemorySpanExporter, tenant, settings, monkeypatch, openai_server
) -> None:
    execution_id = _run_async(tenant, settings, monkeypatch, openai_server)
    finished_spans = list(spans.get_finished_spans())
    request = next(s for s in finished_spans if s.kind == SpanKind.SERVER and "execute" in s.name)
    trace_id = request.context.trace_id
    traced = [s for s in finished_spans if s.context.trace_id == trace_id]

    run = _one(traced, "run traced-chain")
    assert _parent_of(run) == request.context.span_id
    assert _attrs(run)["agentflow.execution_id"] == execution_id
    assert str(_attrs(run)["agentflow.workflow_id"]).startswith("wf_")
    assert _attrs(run)["agentflow.run.status"] == "succeeded"

    stored = Execution.objects.get(pk=execution_id).trace_context
    assert telemetry.trace_id_of(stored) == format(trace_id, "032x")

    nodes = {_attrs(s)["agentflow.node.id"]: s for s in traced if s.name.startswith("node ")}
    assert set(nodes) == {"input", "draft", "polish"}
    assert all(_parent_of(node) == run.context.span_id for node in nodes.values())
    assert _attrs(nodes["draft"])["agentflow.node.type"] == "llm"
    assert _attrs(nodes["draft"])["gen_ai.response.model"] == "gpt-4o-mini"

    calls = [s for s in traced if s.name == "chat gpt-4o-mini"]
    assert len(calls) == 2
    by_node = {_parent_of(call): call for call in calls}
    assert set(by_node) == {nodes["draft"].context.span_id, nodes["polish"].context.span_id}
    polish_call = by_node[nodes["polish"].context.span_id]
    assert polish_call.kind == SpanKind.CLIENT
    attributes = _attrs(polish_call)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert int(attributes["gen_ai.usage.input_tokens"]) > 0
    assert int(attributes["gen_ai.usage.output_tokens"]) > 0
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)

    http = [s for s in traced if s.kind == SpanKind.CLIENT and s.name == "POST"]
    assert {_parent_of(s) for s in http} == {call.context.span_id for call in calls}
    sql = [s for s in traced if _attrs(s).get("db.system") == "postgresql"]
    assert any(_parent_of(s) == request.context.span_id for s in sql)  # the request's writes

    for span in finished_spans:
        text = _text_of(span)
        assert PROMPT_CANARY not in text, span.name
        assert API_KEY not in text, span.name


def test_prompts_and_answers_are_on_provider_spans_only_when_the_operator_asks(
    spans_with_content: InMemorySpanExporter, tenant, settings, monkeypatch, openai_server
) -> None:
    _run_async(tenant, settings, monkeypatch, openai_server)
    calls = [s for s in spans_with_content.get_finished_spans() if s.name.startswith("chat ")]
    assert len(calls) == 2
    sent = json.loads(str(_attrs(calls[0])["gen_ai.input.messages"]))
    assert sent[0]["role"] == "user"
    assert sent[0]["parts"][0]["content"].startswith(PROMPT_CANARY)
    answered = json.loads(str(_attrs(calls[0])["gen_ai.output.messages"]))
    assert answered[0]["role"] == "assistant"
    assert all(API_KEY not in _text_of(span) for span in spans_with_content.get_finished_spans())


def test_a_failing_provider_call_marks_its_spans_failed_without_its_message(
    spans: InMemorySpanExporter, tenant, settings, monkeypatch, openai_server
) -> None:
    provider_ready(tenant, settings, monkeypatch, openai_server.base_url)
    openai_server.script(times=5, status=400, message=f"bad request about {PROMPT_CANARY}")
    client = client_for(issue_key(tenant, "developer"))
    _, execution_id = queue_stored_run(client, tenant)
    with running_worker():
        assert finished(execution_id).status == "failed"
    done = spans.get_finished_spans()
    call = _one(list(done), "chat gpt-4o-mini")
    assert call.status.status_code == StatusCode.ERROR
    assert _attrs(call)["error.type"] == "provider_error"
    node = next(s for s in done if s.name == "node draft")
    assert node.status.status_code == StatusCode.ERROR
    run = _one(list(done), "run traced-chain")
    assert run.status.status_code == StatusCode.ERROR
    assert all(PROMPT_CANARY not in _text_of(span) for span in done)


def test_a_sync_run_nests_under_its_request_too(
    spans: InMemorySpanExporter, tenant, settings, monkeypatch, openai_server
) -> None:
    provider_ready(tenant, settings, monkeypatch, openai_server.base_url)
    client = client_for(issue_key(tenant, "developer"))
    answer = client.post(
        "/api/v1/workflows/execute",
        {"workflow": llm_chain("sync-chain"), "initial_state": {"user_input": "hi"}},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    done = list(spans.get_finished_spans())
    request = next(s for s in done if s.kind == SpanKind.SERVER)
    run = _one(done, "run sync-chain")
    assert _parent_of(run) == request.context.span_id
    assert run.context.trace_id == request.context.trace_id


def test_tracing_is_off_unless_an_exporter_is_configured() -> None:
    assert tracing_config({}) is None
    assert tracing_config({"OTEL_SERVICE_NAME": "agentflow"}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert tracing_config(endpoint) == TracingConfig("otlp", capture_content=False)
    assert tracing_config({**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    assert tracing_config({**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing_config({"OTEL_TRACES_EXPORTER": "console"}) == TracingConfig("console", False)
    captured = {**endpoint, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    assert tracing_config(captured) == TracingConfig("otlp", capture_content=True)
    with pytest.raises(ImproperlyConfigured, match="OTEL_TRACES_EXPORTER"):
        tracing_config({"OTEL_TRACES_EXPORTER": "jaeger"})
    with pytest.raises(ImproperlyConfigured, match="http/protobuf"):
        tracing_config({**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_unconfigured_tracing_sets_nothing_up(settings) -> None:
    setup_tracing(tracing_config({}))  # what AppConfig.ready does with no OTEL_* variable
    assert not telemetry.enabled()
    assert not any("opentelemetry" in name for name in settings.MIDDLEWARE)
    with telemetry.run_scope("wf", {"execution_id": "exec_1"}, "") as span:
        assert span is None
        assert telemetry.current_carrier() == ""


@pytest.mark.slow
def test_a_traced_stack_sends_one_trace_from_its_web_process_through_its_worker(
    tmp_path: Path, tenant, openai_server
) -> None:
    """The operator's setup: OTEL_EXPORTER_OTLP_ENDPOINT on uvicorn and `runworker`."""
    with FakeCollector() as collector:
        env = stack_env(
            tmp_path,
            AGENTFLOW_PROVIDER_BASE_URLS=json.dumps({"openai": openai_server.base_url}),
            OPENAI_API_KEY=API_KEY,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_SERVICE_NAME="agentflow-test",
        )
        stack = Stack(env, tmp_path)
        try:
            stack.web()
            stack.worker()
            tenant.allowed_env = ["OPENAI_API_KEY"]
            tenant.save()
            key = issue_key(tenant, "developer")
            workflow = workflow_create(tenant=tenant, spec=llm_chain(), actor="test")
            answer = httpx2.post(
                f"{stack.url}/api/v1/workflows/{workflow.id}/execute",
                json={"initial_state": {"user_input": "hello"}, "mode": "async"},
                headers={"X-API-Key": key.secret},
                timeout=30,
            )
            assert answer.status_code == 202, answer.text
            assert finished(answer.json()["execution_id"]).status == "succeeded"
            wait_for(
                lambda: len([s for s in collector.spans() if s.name.startswith("chat ")]) == 2,
                60,
                "the worker's spans at the collector",
            )
        finally:
            stack.stop()
        got = collector.spans()
    request = next(s for s in got if s.kind == 2 and "execute" in s.name)
    run = next(s for s in got if s.name == "run traced-chain")
    assert run.parent_span_id == request.span_id
    assert run.trace_id == request.trace_id
    assert run.resource["service.name"] == "agentflow-test"
    assert run.resource["service.instance.id"] != request.resource["service.instance.id"]
    calls = [s for s in got if s.name == "chat gpt-4o-mini"]
    assert {s.trace_id for s in calls} == {request.trace_id}
    assert all(s.attributes["gen_ai.usage.output_tokens"] > 0 for s in calls)
    assert not any(PROMPT_CANARY in str(s) or API_KEY in str(s) for s in got)


def test_no_exported_span_holds_a_credential(spans: InMemorySpanExporter, monkeypatch) -> None:
    secret = "sk-live-span-canary-0123456789"
    monkeypatch.setenv("ACME_OPENAI_API_KEY", secret)
    tracer = TracerProvider().get_tracer("test")  # a span as any library would make it
    with tracer.start_as_current_span("leaky") as made:
        made.set_attribute("db.statement", f"SELECT '{secret}'")
        made.add_event("exception", {"exception.message": f"Bearer {secret} refused"})
        made.set_status(StatusCode.ERROR, f"failed with {secret}")
    shown = scrubbed(made)
    assert secret not in _text_of(shown)
    assert "[redacted]" in str(_attrs(shown)["db.statement"])
    assert shown.context == made.get_span_context() and shown.name == "leaky"


def test_an_outgoing_requests_url_is_traced_without_its_query(
    spans: InMemorySpanExporter, openai_server
) -> None:
    httpx2.get(f"{openai_server.url}/anything?api_key=sk-query-canary-42", timeout=10)
    (sent,) = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    urls = [str(v) for k, v in _attrs(sent).items() if k in ("url.full", "http.url")]
    assert urls == [f"{openai_server.url}/anything"]
