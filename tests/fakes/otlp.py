"""A fake OpenTelemetry collector: OTLP over HTTP/protobuf (`POST /v1/traces`) on 127.0.0.1,
keeping every span it receives for a test to read."""

from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.fakes.server import Behaviour, FakeServer, RecordedRequest, Reply


@dataclass(frozen=True)
class CollectedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    """OTLP's SpanKind: 2 server, 3 client."""
    attributes: dict[str, Any]
    resource: dict[str, Any]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _export(request: RecordedRequest, behaviour: Behaviour) -> Reply:
    body = ExportTraceServiceResponse().SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", "Content-Length": str(len(body))}
    return Reply(behaviour.status, headers, [body])


class FakeCollector(FakeServer):
    """Point OTEL_EXPORTER_OTLP_ENDPOINT at `url`; read what arrived with `spans()`."""

    def __init__(self) -> None:
        super().__init__(_export)

    def spans(self) -> list[CollectedSpan]:
        found: list[CollectedSpan] = []
        for request in list(self.requests):
            if request.path != "/v1/traces":
                continue
            export = ExportTraceServiceRequest.FromString(request.body)
            for resource_spans in export.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    found += [_collected(span, resource) for span in scope_spans.spans]
        return found


def _collected(span: Any, resource: dict[str, Any]) -> CollectedSpan:
    return CollectedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        kind=span.kind,
        attributes=_attributes(span.attributes),
        resource=resource,
    )
