"""Traces and log context for runs, nodes and provider calls, on the OpenTelemetry API alone.

Off until the process turns it on (`enable`, from the site's tracing setup, which builds the
SDK): every helper then costs a flag test and, for the log context, a contextvar set. On, a run
is one span (`run <workflow>`), each node attempt a child span, and each provider call a
client span under its node with the GenAI semantic conventions' attributes (provider, model,
tokens). Prompt and answer text go into a span only when the operator asked for it
(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT), and then redacted by the run's redactor.

A run names its trace parent with a W3C `traceparent` (and `tracestate`) as text: the web
request that queued it stored it (`current_carrier`), the worker that runs it continues it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode

from runtime.events import NodeFinished

logger = structlog.get_logger("agentflow.run")

MAX_CARRIER = 512
"""The most a stored trace context may hold (Execution.trace_context); tracestate is dropped
first, as W3C allows."""

_state: dict[str, Any] = {"tracer": None, "capture": False}

GENAI_PROVIDERS: dict[str, tuple[str, str]] = {
    # source kind: (gen_ai.provider.name, gen_ai.system as older conventions spelled it)
    "openai": ("openai", "openai"),
    "openai_image": ("openai", "openai"),
    "azure_openai": ("azure.ai.openai", "az.ai.openai"),
    "anthropic": ("anthropic", "anthropic"),
    "google": ("gcp.gemini", "gcp.gemini"),
}
_SAMPLING = ("max_tokens", "temperature", "top_p", "frequency_penalty", "presence_penalty")


def enable(tracer_provider: Any = None, *, capture_content: bool = False) -> None:
    """Trace runs from now on, with `tracer_provider` (default: the global one)."""
    _state["tracer"] = trace.get_tracer("agentflow.runtime", tracer_provider=tracer_provider)
    _state["capture"] = capture_content


def disable() -> None:
    _state["tracer"], _state["capture"] = None, False


def enabled() -> bool:
    return _state["tracer"] is not None


# --- trace context carried on an execution ------------------------------------------------------


def current_carrier() -> str:
    """The current span's context as `traceparent[ tracestate]`; empty when not tracing."""
    if _state["tracer"] is None:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    parent = carrier.get("traceparent", "")
    state = carrier.get("tracestate", "")
    text = f"{parent} {state}" if parent and state else parent
    return text if len(text) <= MAX_CARRIER else parent


def parent_context(carrier: str) -> Context | None:
    """The context a stored carrier names (None for an empty one: the current context)."""
    if not carrier:
        return None
    parent, _, state = carrier.partition(" ")
    headers = {"traceparent": parent, **({"tracestate": state} if state else {})}
    return propagate.extract(headers)


def trace_id_of(carrier: str) -> str:
    """The trace id a stored carrier names, for log lines written away from its spans."""
    parts = carrier.partition(" ")[0].split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, in hex; None when there is none."""
    if _state["tracer"] is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# --- runs and nodes -----------------------------------------------------------------------------


@contextlib.contextmanager
def run_scope(workflow_name: str, labels: Mapping[str, str], carrier: str) -> Iterator[Span | None]:
    """A run's log context (`labels`: execution_id, workflow_id…) and, when tracing, its span,
    a child of the span `carrier` names (or of the current one)."""
    with structlog.contextvars.bound_contextvars(**labels):
        tracer = _state["tracer"]
        if tracer is None:
            yield None
            return
        attributes = {f"agentflow.{name}": value for name, value in labels.items() if value}
        with tracer.start_as_current_span(
            f"run {workflow_name}",
            context=parent_context(carrier),
            attributes={**attributes, "agentflow.workflow.name": workflow_name},
            record_exception=False,
        ) as span:
            yield span


def run_ended(span: Span | None, status: str, error: Mapping[str, Any] | None) -> None:
    if span is None:
        return
    span.set_attribute("agentflow.run.status", status)
    if error is not None:
        span.set_status(StatusCode.ERROR, str(error.get("code", "")))


@contextlib.contextmanager
def node_scope(node_id: str, node_type: str, attempt: int) -> Iterator[Span | None]:
    """One node attempt's log context (node_id) and, when tracing, its span."""
    with structlog.contextvars.bound_contextvars(node_id=node_id):
        tracer = _state["tracer"]
        if tracer is None:
            yield None
            return
        attributes = {
            "agentflow.node.id": node_id,
            "agentflow.node.type": node_type,
            "agentflow.node.attempt": attempt,
        }
        with tracer.start_as_current_span(
            f"node {node_id}",
            attributes=attributes,
            record_exception=False,  # an exception's text may quote the state
            set_status_on_exception=False,
        ) as span:
            yield span


def node_finished(span: Span | None, event: NodeFinished) -> None:
    """Log a node attempt's end (once, at INFO, with its duration) and put it on its span."""
    code = str(event.error.get("code", "")) if event.error else ""
    logger.info(
        "node_finished",
        node_type=event.node_type,
        attempt=event.attempt,
        status=event.status,
        duration_s=round(event.duration, 6),
        tokens=event.tokens,
        cost=event.cost,
        **({"error_code": code} if code else {}),
    )
    if span is None:
        return
    span.set_attribute("agentflow.node.status", event.status)
    span.set_attribute("agentflow.tokens", event.tokens)
    span.set_attribute("agentflow.cost_usd", event.cost)
    model = event.details.get("model")
    if isinstance(model, str) and model:
        span.set_attribute("gen_ai.response.model", model)
    if code:
        span.set_attribute("error.type", code)
        span.set_status(StatusCode.ERROR, code)


# --- provider calls -----------------------------------------------------------------------------


@dataclass
class ProviderCall:
    """What a provider call's span learns once the answer is in (nothing when not tracing)."""

    span: Span | None = None
    redact: Callable[[str], str] = str

    def answered(
        self, model: str, usage: Any, finish_reason: str | None = None, output: str | None = None
    ) -> None:
        """`usage`: a runtime.providers.base.Usage (prompt_tokens, completion_tokens)."""
        span = self.span
        if span is None:
            return
        span.set_attribute("gen_ai.response.model", model)
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        if output is not None and _state["capture"]:
            message = [{"role": "assistant", "parts": [{"type": "text", "content": output}]}]
            span.set_attribute("gen_ai.output.messages", self.redact(json.dumps(message)))


_NOT_TRACED = ProviderCall()


@contextlib.contextmanager
def provider_call(
    operation: str, source: Any, *, request: Any = None, redact: Callable[[str], str] = str
) -> Iterator[ProviderCall]:
    """A client span around one provider call (`chat`, `embeddings`, `generate_content`).

    Args:
        source: the node's SourceSpec (its kind, and a config holding the model, URL and
            sampling settings; never a key).
        request: the call's ChatRequest or ImageRequest: its sampling overrides, and its
            messages or prompt, recorded only when content capture is on.
        redact: the run's redactor, applied to any content recorded.
    """
    tracer = _state["tracer"]
    if tracer is None:
        yield _NOT_TRACED
        return
    config: Mapping[str, Any] = source.config
    model = str(config.get("model_name") or config.get("deployment") or "")
    with tracer.start_as_current_span(
        f"{operation} {model}".strip(),
        kind=SpanKind.CLIENT,
        attributes=_provider_attributes(operation, source.kind, model, config, request),
        record_exception=False,  # an SDK's message may quote the request
        set_status_on_exception=False,
    ) as span:
        if request is not None and _state["capture"]:
            span.set_attribute("gen_ai.input.messages", redact(json.dumps(_input(request))))
        try:
            yield ProviderCall(span, redact)
        except Exception as exc:
            kind_of = str(getattr(exc, "code", None) or type(exc).__name__)
            span.set_attribute("error.type", kind_of)
            span.set_status(StatusCode.ERROR, kind_of)
            raise


def _provider_attributes(
    operation: str, kind: str, model: str, config: Mapping[str, Any], request: Any
) -> dict[str, Any]:
    provider, system = GENAI_PROVIDERS.get(kind, (kind, kind))
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.system": system,
        "gen_ai.request.model": model,
    }
    for name in _SAMPLING:
        value = getattr(request, name, None)
        value = config.get(name) if value is None else value
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[f"gen_ai.request.{name}"] = value
    url = config.get("base_url") or config.get("endpoint")
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return attributes


def _input(request: Any) -> list[dict[str, Any]]:
    """The request's content as GenAI input messages: a chat's messages, an image's prompt."""
    messages = getattr(request, "messages", None)
    if messages is None:
        messages = [_Text("user", str(getattr(request, "prompt", "")))]
    return [{"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in messages]


@dataclass(frozen=True)
class _Text:
    role: str
    content: str
