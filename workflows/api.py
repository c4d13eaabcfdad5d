import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiExample, OpenApiTypes, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow_site.auth import principal_of
from runtime.errors import SpecError
from runtime.jsonpos import locate
from runtime.spec import workflow_spec_json_schema
from runtime.validation import ValidationResult
from tenants.models import Role
from workflows.serializers import ValidationResultSerializer
from workflows.services import workflow_validate

SPEC_EXAMPLE = {
    "name": "hello",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {"id": "answer", "type": "aggregator",
         "metadata": {"strategy": "template", "template": "You said: {{ user_input }}"}},
    ],
    "edges": [{"from": "input", "to": "answer"}],
}  # fmt: skip


def _too_large(limit: int) -> dict[str, Any]:
    message = f"The spec is larger than the {limit:,}-byte limit; split it into smaller workflows."
    problem = SpecError("spec_too_large", message, "")
    return {"valid": False, "errors": [problem.to_dict()], "warnings": []}


def _with_prefix(result: ValidationResult, text: str, prefix: str) -> dict[str, Any]:
    """Positions of problems in a spec wrapped as `{"spec": …}`, found in the whole body."""
    body = result.to_dict()
    problems = [*body["errors"], *body["warnings"]]
    where = locate(text, {prefix + p["path"] for p in problems})
    for p in problems:
        p["line"], p["column"] = where.get(prefix + p["path"], (None, None))
    return body


class WorkflowValidateApi(APIView):
    """Validate a WorkflowSpec and report every problem at once (any role may validate).

    The body is a spec, or `{"spec": …, "node": id}` to check one node. Always 200 with
    `{valid, errors, warnings}` for JSON; 400 for a body that is not JSON at all.
    """

    write_role = Role.VIEWER  # a POST, but it changes nothing

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses=ValidationResultSerializer,
        examples=[OpenApiExample("a spec", value=SPEC_EXAMPLE, request_only=True)],
        operation_id="workflows_validate",
    )
    def post(self, request: Request) -> Response:
        try:
            raw = request.body
        except RequestDataTooBig:
            return Response(_too_large(settings.AGENTFLOW_MAX_SPEC_BYTES))
        try:
            body = json.loads(raw)
        except RecursionError:
            body = None  # JSON, but nested too deep to parse here: the validator reports it
        except ValueError as exc:
            raise exceptions.ParseError(f"The body is not JSON: {exc}") from exc
        if isinstance(body, dict) and "spec" in body and "nodes" not in body:
            node = body.get("node")
            if node is not None and not isinstance(node, str):
                raise exceptions.ValidationError({"node": ["Must be a node id (a string)."]})
            tenant = principal_of(request).tenant
            result = workflow_validate(spec=body["spec"], tenant=tenant, only_node=node)
            return Response(_with_prefix(result, raw.decode("utf-8", "replace"), "/spec"))
        result = workflow_validate(spec=raw, tenant=principal_of(request).tenant)
        return Response(result.to_dict())


class WorkflowSpecSchemaApi(APIView):
    """The JSON Schema (draft 2020-12) of a WorkflowSpec, node metadata and source configs
    included, for editors and code generators."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="workflow_spec_schema")
    def get(self, request: Request) -> Response:
        return Response(workflow_spec_json_schema())
