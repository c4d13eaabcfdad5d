"""Traces with OpenTelemetry: off unless the operator configures an exporter.

On when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, or when
OTEL_TRACES_EXPORTER names `otlp` or `console`; OTEL_SDK_DISABLED=true or
OTEL_TRACES_EXPORTER=none keeps it off. The SDK reads the other standard variables itself:
OTEL_SERVICE_NAME (default `agentflow`), OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and
its _ARG, OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*. Off, nothing of the SDK is imported and the
runtime's helpers cost a flag test.

On, every process (each web process, each `runworker`) builds its own tracer provider at start
(`AppConfig.ready`), batching spans to the exporter on a thread of its own; the SDK restarts
that thread in a forked child. What is traced: each request (Django), each run, node attempt
and provider call (runtime.telemetry), each SQL statement (psycopg: Django's and the db
nodes'), Redis command and outgoing HTTP request (httpx2: providers' SDKs and http nodes).
A span never holds a credential: outgoing URLs lose their query string, and every string an
exported span holds goes through the logs' scrubber (agentflow_site.logging) first.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from runtime import telemetry

EXPORTERS = ("otlp", "console")
DEFAULT_SERVICE_NAME = "agentflow"
DEFAULT_EXCLUDED_URLS = "/health,/metrics,/static/"
"""Requests not traced unless OTEL_PYTHON_DJANGO_EXCLUDED_URLS says otherwise (probes, scrapes)."""
CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@dataclass(frozen=True)
class TracingConfig:
    exporter: str
    """`otlp` (OTLP over HTTP/protobuf, to OTEL_EXPORTER_OTLP_ENDPOINT) or `console`."""
    capture_content: bool
    """Put prompts and answers (redacted) on provider spans: OTEL_INSTRUMENTATION_GENAI_…"""


def tracing_config(environ: Mapping[str, str]) -> TracingConfig | None:
    """What the environment asks for; None: tracing is off. Raises ImproperlyConfigured."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = [e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    named = [e for e in named if e]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if "none" in named or (not named and not endpoint):
        return None
    exporter = named[0] if named else "otlp"
    if exporter not in EXPORTERS or len(named) > 1:
        raise ImproperlyConfigured(
            f"OTEL_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)} or none: "
            f"{environ.get('OTEL_TRACES_EXPORTER')!r}."
        )
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if exporter == "otlp" and protocol != "http/protobuf":
        raise ImproperlyConfigured(
            f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: AgentFlow exports traces over "
            "http/protobuf (port 4318 on a collector); leave it unset."
        )
    capture = environ.get(CAPTURE_CONTENT, "").strip().lower() == "true"
    return TracingConfig(exporter=exporter, capture_content=capture)


def disabled_instrumentations(environ: Mapping[str, str]) -> set[str]:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (`psycopg,redis`): libraries left untraced.

    Every SQL statement is a span: a sync execute of a 20-node chain makes about 60, most of
    what tracing costs it (bench/bench_tracing.py); `psycopg` here, or a sampler, cuts that."""
    names = environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {name.strip().lower() for name in names.split(",") if name.strip()}


_provider: list[Any] = []
"""The process's tracer provider, once built."""


def setup_tracing(config: TracingConfig | None) -> None:
    """Build this process's tracer provider and instrument it, when `config` says so."""
    if config is None or _provider:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = _tracer_provider()
    exporter: Any = ScrubbingExporter(_exporter(config))  # a SpanExporter, duck-typed: the
    provider.add_span_processor(BatchSpanProcessor(exporter))  # SDK loads only when on
    trace.set_tracer_provider(provider)  # for any library tracing through the global one
    start_tracing(provider, capture_content=config.capture_content)


def start_tracing(provider: Any, *, capture_content: bool = False) -> None:
    """Trace requests, runs, SQL, Redis and HTTP through `provider` (tests: an in-memory one)."""
    import os

    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS)
    off = disabled_instrumentations(os.environ)
    if "django" not in off:
        DjangoInstrumentor().instrument(tracer_provider=provider, excluded_urls=excluded)
    if "psycopg" not in off:
        PsycopgInstrumentor().instrument(tracer_provider=provider)
    if "redis" not in off:
        RedisInstrumentor().instrument(tracer_provider=provider)
    if "httpx" not in off:
        HTTPX2ClientInstrumentor().instrument(
            tracer_provider=provider, request_hook=_no_query, async_request_hook=_no_query_async
        )
    _provider[:] = [provider]
    telemetry.enable(provider, capture_content=capture_content)


def stop_tracing() -> None:
    """Undo `start_tracing` (tests, benchmarks); nothing when it was not started."""
    if not _provider:
        return
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    telemetry.disable()
    for instrumentor in (
        DjangoInstrumentor(),
        PsycopgInstrumentor(),
        RedisInstrumentor(),
        HTTPX2ClientInstrumentor(),
    ):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _provider.clear()


def _tracer_provider() -> Any:
    import os
    import socket

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from agentflow_site import __version__

    # Each process apart: uvicorn's children and each runworker (host:pid, as workers are named).
    defaults = {
        "service.version": __version__,
        "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
    }
    if not os.environ.get("OTEL_SERVICE_NAME"):
        defaults["service.name"] = DEFAULT_SERVICE_NAME
    # The sampler comes from OTEL_TRACES_SAMPLER (default: parentbased_always_on).
    return TracerProvider(resource=Resource.create(defaults))


def _exporter(config: TracingConfig) -> Any:
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables


# --- no credential in a span -------------------------------------------------------------------

_URL_ATTRIBUTES = ("url.full", "http.url")


def _no_query(span: Any, request: Any) -> None:
    """An outgoing request's URL without its query string or user info (an api_key parameter
    would be a credential), as runtime.egress logs it."""
    if not span.is_recording():
        return
    from runtime.egress.door import safe_url

    shown = safe_url(request.url) if hasattr(request.url, "copy_with") else None
    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        if shown is not None and name in attributes:
            span.set_attribute(name, shown)


async def _no_query_async(span: Any, request: Any) -> None:
    _no_query(span, request)


def _scrub(value: Any) -> Any:
    from agentflow_site.logging import scrub_text

    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, tuple | list):
        return tuple(scrub_text(v) if isinstance(v, str) else v for v in value)
    return value


def _scrubbed_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: _scrub(value) for name, value in (attributes or {}).items()}


def scrubbed(span: Any) -> Any:
    """`span` (a ReadableSpan) with credentials masked in its attributes, events and status;
    the span itself when there was nothing to mask."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Status

    attributes = _scrubbed_attributes(span.attributes)
    events = [Event(e.name, _scrubbed_attributes(e.attributes), e.timestamp) for e in span.events]
    description = _scrub(span.status.description)
    if (
        attributes == dict(span.attributes or {})
        and all(
            new.attributes == dict(old.attributes or {})
            for new, old in zip(events, span.events, strict=True)
        )
        and description == span.status.description
    ):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, description),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScrubbingExporter:
    """A SpanExporter that masks credentials (as the logs do) before `inner` sends spans."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def export(self, spans: Sequence[Any]) -> Any:
        return self.inner.export([scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))
