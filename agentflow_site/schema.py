"""OpenAPI extensions for drf-spectacular: how our API-key authentication is documented."""

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, extend_schema_field
from rest_framework import permissions, serializers

from agentflow_site.auth import HasRole
from agentflow_site.errors import PROBLEM_CONTENT_TYPE
from tenants.models import Role


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "agentflow_site.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


class StaffSessionScheme(OpenApiAuthenticationExtension):
    """The admin's session cookie, for staff who act for a tenant (writes also need the
    `X-CSRFToken` header)."""

    target_class = "agentflow_site.auth.StaffSessionAuthentication"
    name = "AdminSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}


# --- The whole truth: errors, tags, summaries ---------------------------------------------

PROBLEM = "Problem"
WORKFLOW_SPEC = "WorkflowSpec"
SPEC_REF = {"$ref": f"#/components/schemas/{WORKFLOW_SPEC}"}

ERROR_DESCRIPTIONS = {
    400: "The request is malformed: a bad query parameter, header or body (`errors` names each).",
    401: "No API key, or one that is unknown, revoked or expired.",
    403: "The key's role may not do this.",
    404: "No such resource in the key's tenant.",
    409: "The request conflicts with the resource's current state.",
    413: "The body is larger than the server accepts.",
    415: "The body is not `application/json`.",
    422: "The workflow, source or request is not valid (`errors` lists every problem).",
    429: "Too many requests for this key; retry after `Retry-After` seconds.",
}

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
VERBS = {"GET": "Get", "PUT": "Replace", "PATCH": "Update", "DELETE": "Delete", "POST": "Create"}
SINGULAR = {
    "workflows": "workflow",
    "executions": "execution",
    "sources": "source",
    "keys": "API key",
    "audit": "audit log",
    "me": "caller's key",
}

PLURAL = {"audit": "audit events", "keys": "API keys"}


def _a(noun: str) -> str:
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def _resource(path: str) -> str:
    """`/api/v1/workflows/{id}/versions` → `workflows`; the spec's JSON Schema is a workflow's."""
    parts = [p for p in path.split("/") if p and not p.startswith("{")]
    rest = parts[2:] if parts[:2] == ["api", "v1"] else parts
    first = rest[0] if rest else "api"
    return "workflows" if first == "schema" else first


class AgentFlowAutoSchema(AutoSchema):
    """Every operation: one tag per resource, a short summary, and each error it can answer as
    `application/problem+json` (by its authentication, permissions, method and parameters)."""

    def get_tags(self) -> list[str]:
        return [_resource(self.path)]

    def get_summary(self) -> str | None:
        explicit = super().get_summary()
        if explicit:
            return explicit
        resource = _resource(self.path)
        one = SINGULAR.get(resource, resource)
        words = [p for p in self.path.split("/") if p][2:]
        method = self.method.upper()
        if len(words) == 1:  # /workflows, /budget, /me
            if method == "GET" and self._is_list_view():
                return f"List {PLURAL.get(resource, resource)}"
            return f"Create {_a(one)}" if method == "POST" else f"{VERBS[method]} the {one}"
        if len(words) == 2 and words[1].startswith("{"):  # /workflows/{id}
            return f"{VERBS[method]} {_a(one)}"
        if len(words) == 2:  # /workflows/validate, /schema/workflow-spec
            if method == "GET":
                return f"Get the {words[1].replace('-', ' ')} JSON Schema"
            return f"{words[1].capitalize()} a workflow spec"
        action = words[2].replace("-", " ")  # /workflows/{id}/versions, /{id}/cancel, files
        if method == "GET":
            return (
                f"List {_a(one)}'s {action}"
                if self._is_list_view()
                else f"Get {_a(one)}'s {action}"
            )
        return f"{action.capitalize()} {_a(one)}"

    def _get_request_body(self, direction: Direction = "request") -> dict[str, Any] | None:
        body: dict[str, Any] | None = super()._get_request_body(direction)
        if body is not None and self.method.lower() in getattr(self.view, "body_required", ()):
            body["required"] = True  # a raw schema is optional to drf-spectacular; not to us
        return body

    def _takes_body(self) -> bool:
        return self.method.upper() in BODY_METHODS and self.get_request_serializer() is not None

    def _error_statuses(self) -> list[int]:
        view, method = self.view, self.method.upper()
        codes: set[int] = set()
        if view.get_authenticators():
            codes.add(401)
        if view.get_throttles():
            codes.add(429)
        if any(isinstance(p, HasRole) for p in view.get_permissions()):
            if method in permissions.SAFE_METHODS:
                needed = getattr(view, "read_role", Role.VIEWER)
            else:
                needed = getattr(view, "write_role", Role.DEVELOPER)
            if Role.rank(needed) > Role.rank(Role.VIEWER):
                codes.add(403)
        parameters = self._get_parameters()
        if any(p.get("in") in ("query", "header") for p in parameters):
            codes.add(400)
        paginated = self._is_list_view() and self._get_paginator() is not None
        if paginated or any(p.get("in") == "path" for p in parameters):
            codes.add(404)  # an unknown id, a page past the last, a cursor that does not decode
        if self._takes_body():
            codes |= {400, 413, 415}
        codes |= set(getattr(view, "problem_statuses", {}).get(method.lower(), ()))
        return sorted(codes)

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction=direction)
        if direction != "response":
            return responses
        problem = self.resolve_serializer(ProblemSerializer, "response").ref
        for code in self._error_statuses():
            if str(code) in responses:
                continue
            response: dict[str, Any] = {
                "description": ERROR_DESCRIPTIONS[code],
                "content": {PROBLEM_CONTENT_TYPE: {"schema": problem}},
            }
            if code == 401:
                response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
            if code == 429:
                response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}
            responses[str(code)] = response
        return responses


class FieldProblemSerializer(serializers.Serializer[dict[str, Any]]):
    field = serializers.CharField(help_text="the field, header or JSON Pointer it concerns")
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer[dict[str, Any]]):
    """RFC 9457 problem details, as every error answers (agentflow_site.errors)."""

    type = serializers.URLField()
    title = serializers.CharField()
    status = serializers.IntegerField(min_value=400, max_value=599)
    detail = serializers.CharField()
    instance = serializers.CharField(allow_null=True, required=False)  # type: ignore[assignment]
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.DictField(),
        required=False,
        help_text="each problem: `{field, message}`, or a spec problem "
        "`{type, message, node_id, path, line, column}`",
    )
    retry_after = serializers.CharField(allow_null=True, required=False)

    class Meta:
        ref_name = PROBLEM


@extend_schema_field(SPEC_REF)
class WorkflowSpecField(serializers.JSONField):
    """A WorkflowSpec: documented by its JSON Schema (`GET /api/v1/schema/workflow-spec`)."""


def _rewrite_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite_refs(v, prefix) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = f"#/components/schemas/{prefix}{ref[len('#/$defs/') :]}"
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, prefix) for v in node]
    return node


def _as_alternatives(definition: dict[str, Any]) -> dict[str, Any]:
    """`allOf: [{if: {tag: const X}, then: {field: …}}, …]` as `anyOf` one branch per X (and
    one for any other tag value, unconstrained): the same values, in a form generators and
    code generators understand (`if`/`then` they do not)."""
    rules = definition.get("allOf")
    if not isinstance(rules, list) or not all(set(r) == {"if", "then"} for r in rules):
        return definition
    tags = {tag for r in rules for tag in r["if"]["properties"]}
    if len(tags) != 1:
        return definition
    tag = tags.pop()
    values = [r["if"]["properties"][tag]["const"] for r in rules]
    branches: list[dict[str, Any]] = [
        {
            "properties": {tag: {"const": value}, **r["then"]["properties"]},
            "required": [tag],
        }
        for value, r in zip(values, rules, strict=True)
    ]
    if set(definition.get("properties", {}).get(tag, {}).get("enum", [None])) - set(values):
        branches.append({"properties": {tag: {"not": {"enum": values}}}})  # no rule applies
    return {**{k: v for k, v in definition.items() if k != "allOf"}, "anyOf": branches}


def workflow_spec_components() -> dict[str, Any]:
    """The WorkflowSpec JSON Schema as OpenAPI components: `WorkflowSpec` and its `$defs`
    (renamed `WorkflowSpec_<name>`, their references rewritten)."""
    from runtime.plugins.registry import metadata_models
    from runtime.spec import workflow_spec_json_schema

    schema = dict(workflow_spec_json_schema(metadata_models()))  # enabled plugins' types too
    defs = schema.pop("$defs", {})
    schema.pop("$schema", None)
    prefix = f"{WORKFLOW_SPEC}_"
    components = {
        prefix + name: _rewrite_refs(_as_alternatives(d), prefix) for name, d in defs.items()
    }
    components[WORKFLOW_SPEC] = _rewrite_refs(schema, prefix)
    return components


def _any_json(node: Any) -> Any:
    """`oneOf: [{}, {type: null}]` (drf-spectacular's nullable JSONField under OpenAPI 3.1) is
    true of no null at all, since null matches both: any JSON value is `{}`."""
    if isinstance(node, dict):
        out = {k: _any_json(v) for k, v in node.items()}
        if isinstance(out.get("oneOf"), list) and {} in out["oneOf"]:
            del out["oneOf"]
        return out
    if isinstance(node, list):
        return [_any_json(v) for v in node]
    return node


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> Any:
    """Add the WorkflowSpec components the `WorkflowSpecField`s refer to, and list the tags."""
    result = _any_json(result)
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name in ("ExecuteRequestRequest", "StoredExecuteRequestRequest"):
        if name in schemas:  # a sync run's timeout has the operator's ceiling
            ceiling = settings.AGENTFLOW_SYNC_TIMEOUT
            schemas[name]["anyOf"] = [
                {"properties": {"mode": {"const": "async"}}, "required": ["mode"]},
                {"properties": {"timeout_seconds": {"maximum": ceiling}}},
            ]
            schemas[name]["description"] = (
                f"`timeout_seconds` is at most {ceiling:g} unless `mode` is `async`."
            )
    if "ExecuteRequestRequest" in schemas:  # the spec as `workflow` (SPEC §4) or as `spec`
        schemas["ExecuteRequestRequest"]["oneOf"] = [
            {"required": ["workflow"]},
            {"required": ["spec"]},
        ]
        schemas["ExecuteRequestRequest"]["description"] += (
            " Send the WorkflowSpec as `workflow` or as `spec`, one of the two."
        )
        execute = result["paths"].get("/api/v1/workflows/execute", {}).get("post")
        if execute and "requestBody" in execute:  # no field alone is required; the body is
            execute["requestBody"]["required"] = True
    result.setdefault("components", {}).setdefault("schemas", {}).update(workflow_spec_components())
    tags = sorted(
        {tag for ops in result["paths"].values() for op in ops.values() for tag in op["tags"]}
    )
    result["tags"] = [{"name": tag} for tag in tags]
    return result
