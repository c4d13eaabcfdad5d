"""Export a stored workflow as one document; import one (or a Dify DSL or Flowise chatflow)."""

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from agentflow_site.errors import ContentTooLarge, InvalidSpec
from agentflow_site.parsers import BodyRefused, JSONParser, decode, loads, refusal_in
from workflows.api import workflow_of
from workflows.imports.documents import load_yaml
from workflows.imports.report import ImportOptions
from workflows.serializers import WorkflowDetailSerializer
from workflows.transfer import (
    FORMATS,
    ImportInvalid,
    ImportRefused,
    workflow_export,
    workflow_import,
)

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
NAME = r"^[^\x00-\x1f\x7f]+$"
"""A workflow name: no control characters (PostgreSQL stores no NUL)."""


def document_from_text(raw: str) -> Any:
    """A document sent as text, JSON or YAML, in plain JSON types the database can store.

    Raises:
        ParseError: it is neither; BodyRefused: it holds what the API cannot take.
    """
    if len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise ContentTooLarge()
    try:
        value = load_yaml(raw)  # JSON is YAML too
        text = json.dumps(value, default=str)  # dates become text; other keys are refused
    except (ValueError, TypeError) as exc:
        raise exceptions.ParseError(f"The document is neither JSON nor YAML: {exc}") from None
    value = loads(text)  # NaN and Infinity are refused here
    refusal = refusal_in(value)
    if refusal is not None:
        raise BodyRefused(refusal)
    return value


class YAMLParser(parsers.BaseParser):
    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        return {"document": document_from_text(decode(stream.read(), encoding))}


class XYAMLParser(YAMLParser):
    media_type = "application/x-yaml"


class TextYAMLParser(YAMLParser):
    media_type = "text/yaml"


class ImportBodySerializer(serializers.Serializer[dict[str, Any]]):
    document = serializers.JSONField(
        help_text="the document: an AgentFlow export, a Dify DSL or a Flowise chatflow, as an "
        "object or as JSON/YAML text"
    )
    format = serializers.ChoiceField(choices=FORMATS, required=False)
    name = serializers.RegexField(
        NAME,
        max_length=200,
        trim_whitespace=False,
        required=False,
        help_text="import under it (no control characters)",
    )
    source_map = serializers.DictField(
        child=serializers.CharField(max_length=128),
        required=False,
        help_text='stored sources to use per provider: {"openai": "src_…" or a name}',
    )
    api_key_env = serializers.RegexField(
        ENV_NAME,
        required=False,
        help_text="the variable inline LLM sources read their key from",
    )


class ImportFailed(exceptions.APIException):
    """An import refused: `errors` names where in the document, `report` says what mapped."""

    default_code = "import_refused"

    def __init__(self, exc: ImportRefused) -> None:
        super().__init__(str(exc))
        self.status_code = exc.status
        field = exc.field.strip("/").replace("/", ".")
        self.errors = [{"field": field, "message": str(exc)}]
        self.extra = {"report": exc.report.to_dict()} if exc.report is not None else {}


def _body(request: Request) -> dict[str, Any]:
    data = request.data
    given = data if isinstance(data, dict) and "document" in data else {"document": data}
    merged = {**request.query_params.dict(), **given}
    body = ImportBodySerializer(data=merged)
    body.is_valid(raise_exception=True)
    checked = dict(body.validated_data)
    if isinstance(checked["document"], str):
        try:
            checked["document"] = document_from_text(checked["document"])
        except exceptions.ParseError as exc:  # the body was JSON: its `document` is wrong
            raise ImportFailed(ImportRefused("/document", str(exc.detail))) from exc
    return checked


class _NoFormatOverride:
    """DRF's settings, but `?format=` names the document's format, not a renderer."""

    def __getattr__(self, name: str) -> Any:
        return None if name == "URL_FORMAT_OVERRIDE" else getattr(api_settings, name)


class ImportNegotiation(DefaultContentNegotiation):
    settings = _NoFormatOverride()  # type: ignore[assignment]  # reads as DRF's settings do


IMPORT_PARAMETERS = [
    OpenApiParameter(
        "format",
        {"type": "string", "enum": list(FORMATS)},
        description="the document's format (default: detected)",
    ),
    OpenApiParameter(
        "name",
        {"type": "string", "maxLength": 200, "pattern": NAME},
        description="import under this name",
    ),
    OpenApiParameter(
        "api_key_env",
        {"type": "string", "pattern": ENV_NAME},
        description="the variable inline LLM sources read",
    ),
]


class WorkflowExportApi(APIView):
    """One JSON document with the workflow, every saved version (oldest first) and the stored
    sources they use (configs only: they name environment variables, never hold secrets).
    `POST /workflows/import` takes it back, here or on another installation."""

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="workflows_export",
        summary="Export a workflow with its versions and sources",
    )
    def get(self, request: Request, workflow_id: str) -> Response:
        workflow = workflow_of(principal_of(request).tenant, workflow_id)
        filename = f"{workflow.id}.agentflow.json"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(workflow_export(workflow=workflow), headers=headers)


class WorkflowImportApi(APIView):
    """Create a workflow from an AgentFlow export, a Dify DSL (YAML) or a Flowise chatflow.

    The body is the document, or `{"document": …, "name", "format", "source_map",
    "api_key_env"}`; a YAML body (`Content-Type: application/yaml`) takes its options from
    the query. Every version is validated for your tenant; sources are reused when you have
    them as they were, else created. A taken name or a source of that name with another config
    is a 409; a version that does not validate is a 422 naming every problem; nothing is
    written then. Dify and Flowise nodes that do not map are listed in `report.not_mapped`.
    """

    parser_classes = (JSONParser, YAMLParser, XYAMLParser, TextYAMLParser)
    content_negotiation_class = ImportNegotiation
    body_required = ("post",)
    problem_statuses = {"post": (409, 422)}

    @extend_schema(
        parameters=IMPORT_PARAMETERS,
        request={"application/json": ImportBodySerializer, "application/yaml": OpenApiTypes.STR},
        responses={
            201: OpenApiResponse(OpenApiTypes.OBJECT, description="`{workflow, format, report}`")
        },
        operation_id="workflows_import",
        summary="Import a workflow",
    )
    def post(self, request: Request) -> Response:
        body = _body(request)
        principal = principal_of(request)
        options = ImportOptions(body.get("source_map") or {}, body.get("api_key_env"))
        try:
            done = workflow_import(
                tenant=principal.tenant,
                document=body["document"],
                actor=principal.actor,
                fmt=body.get("format"),
                name=body.get("name"),
                options=options,
            )
        except ImportRefused as exc:
            raise ImportFailed(exc) from exc
        except ImportInvalid as exc:
            invalid = InvalidSpec(exc.errors, "imported document")
            invalid.extra = {"report": exc.report.to_dict()} if exc.report else {}  # type: ignore[attr-defined]
            raise invalid from exc
        data = {
            "workflow": WorkflowDetailSerializer(done.workflow).data,
            "format": done.format,
            "report": done.report,
        }
        headers = {"Location": f"/api/v1/workflows/{done.workflow.id}"}
        return Response(data, status=status.HTTP_201_CREATED, headers=headers)
