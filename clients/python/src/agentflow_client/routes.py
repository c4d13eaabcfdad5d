"""The API routes the clients call, what they send and what they read, in one table.

Both clients build every request from this table and parse every answer with the functions
below, so the sync and async clients cannot drift apart, and a test can hold the whole table
to a server's OpenAPI document (`tests/client/test_openapi_contract.py`).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import httpx2

from agentflow_client.errors import error_for
from agentflow_client.models import (
    Event,
    Execution,
    ExecutionSummary,
    Imported,
    Json,
    Me,
    Model,
    Problem,
    Run,
    ValidationResult,
    Workflow,
    WorkflowSummary,
)


class Route(NamedTuple):
    method: str
    path: str
    reads: type[Model] | None = None
    params: tuple[str, ...] = ()
    """Query parameters and headers the client may send."""
    body: tuple[str, ...] = ()
    """Top-level fields of the JSON body the client may send."""


FILTERS = ("status", "created_after", "created_before", "page_size")
ME = Route("GET", "/api/v1/me", Me)
VALIDATE = Route(
    "POST",
    "/api/v1/workflows/validate",
    ValidationResult,
    ("estimate",),
    ("spec", "node", "initial_state"),
)
WORKFLOWS = Route("GET", "/api/v1/workflows", WorkflowSummary, ("page", "name", *FILTERS))
WORKFLOW_CREATE = Route("POST", "/api/v1/workflows", Workflow, body=("spec",))
WORKFLOW = Route("GET", "/api/v1/workflows/{workflow_id}", Workflow)
WORKFLOW_UPDATE = Route("PUT", "/api/v1/workflows/{workflow_id}", Workflow, body=("spec",))
WORKFLOW_DELETE = Route("DELETE", "/api/v1/workflows/{workflow_id}")
EXPORT = Route("GET", "/api/v1/workflows/{workflow_id}/export")
IMPORT = Route(
    "POST",
    "/api/v1/workflows/import",
    Imported,
    body=("document", "name", "format", "source_map", "api_key_env"),
)
RUN_BODY = ("initial_state", "mode", "timeout_seconds")
EXECUTE = Route(
    "POST", "/api/v1/workflows/execute", Run, ("Idempotency-Key",), ("workflow", *RUN_BODY)
)
EXECUTE_STORED = Route(
    "POST",
    "/api/v1/workflows/{workflow_id}/execute",
    Run,
    ("Idempotency-Key",),
    ("version", *RUN_BODY),
)
EXECUTIONS = Route("GET", "/api/v1/executions", ExecutionSummary, ("cursor", "workflow", *FILTERS))
EXECUTION = Route("GET", "/api/v1/executions/{execution_id}", Execution)
CANCEL = Route("POST", "/api/v1/executions/{execution_id}/cancel", ExecutionSummary)
REPLAY = Route(
    "POST",
    "/api/v1/executions/{execution_id}/replay",
    Run,
    body=("version", "from_node", "mode", "initial_state"),
)
EVENTS = Route("GET", "/api/v1/executions/{execution_id}/events", None, ("Last-Event-ID",))
ROUTES = (
    ME,
    VALIDATE,
    WORKFLOWS,
    WORKFLOW_CREATE,
    WORKFLOW,
    WORKFLOW_UPDATE,
    WORKFLOW_DELETE,
    EXPORT,
    IMPORT,
    EXECUTE,
    EXECUTE_STORED,
    EXECUTIONS,
    EXECUTION,
    CANCEL,
    REPLAY,
    EVENTS,
)
FREE_FORM = (EXPORT, IMPORT)
"""Routes whose answer the server declares a free-form object: the client reads what the
README documents, and the contract test can only check that nothing narrower is declared."""


@dataclass(frozen=True)
class Call:
    """One request, ready for either client."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def call(route: Route, *, body: Any = None, **path_args: str) -> Call:
    return Call(route.method, route.path.format(**path_args), json=body)


def execute_call(
    target: "str | Mapping[str, Any] | WorkflowSummary",
    initial_state: Mapping[str, Any] | None,
    *,
    background: bool,
    idempotency_key: str | None,
    version: int | None,
    timeout_seconds: float | None,
) -> Call:
    """A spec runs inline (`/workflows/execute`); a workflow id or Workflow runs stored."""
    body: Json = {"initial_state": dict(initial_state or {})}
    body["mode"] = "async" if background else "sync"
    if timeout_seconds is not None:
        body["timeout_seconds"] = timeout_seconds
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    if isinstance(target, WorkflowSummary | str):
        if version is not None:
            body["version"] = version
        workflow_id = target.id if isinstance(target, WorkflowSummary) else target
        path = EXECUTE_STORED.path.format(workflow_id=workflow_id)
        return Call("POST", path, json=body, headers=headers)
    if version is not None:
        raise ValueError("version applies to a stored workflow, not to an inline spec")
    return Call("POST", EXECUTE.path, json={"workflow": dict(target), **body}, headers=headers)


def validate_call(
    spec: Mapping[str, Any],
    node: str | None,
    *,
    estimate: bool,
    initial_state: Mapping[str, Any] | None,
) -> Call:
    """Validate a spec (or one `node`); `estimate=True` adds a dry run from `initial_state`."""
    body: Json = {"spec": dict(spec)}
    if node:
        body["node"] = node
    if initial_state is not None and not estimate:
        raise ValueError("initial_state is what an estimate renders prompts from: estimate=True")
    if not estimate:
        return Call("POST", VALIDATE.path, json=body)
    body["initial_state"] = dict(initial_state or {})
    return Call("POST", VALIDATE.path, params={"estimate": "true"}, json=body)


def replay_call(execution_id: str, **asked: Any) -> Call:
    """The replay's body: only what was given (the server defaults each to the run's own)."""
    body = {name: value for name, value in asked.items() if value is not None}
    if "initial_state" in body:
        body["initial_state"] = dict(body["initial_state"])
    return Call("POST", REPLAY.path.format(execution_id=execution_id), json=body)


def import_call(document: "str | Mapping[str, Any]", **options: Any) -> Call:
    """A document as an object, or as JSON or YAML text (the server reads both)."""
    given = document if isinstance(document, str) else dict(document)
    body: Json = {"document": given}
    body |= {name: value for name, value in options.items() if value is not None}
    if "source_map" in body:
        body["source_map"] = dict(body["source_map"])
    return Call("POST", IMPORT.path, json=body)


def list_call(route: Route, filters: Mapping[str, Any]) -> Call:
    params = {name: str(value) for name, value in filters.items() if value is not None}
    unknown = set(params) - set(route.params)
    if unknown:
        raise TypeError(f"unknown filter(s) for {route.path}: {', '.join(sorted(unknown))}")
    return Call("GET", route.path, params=params)


def next_page(current: Call, answer: Json) -> Call | None:
    """The next page's request: the `next` link's query on the same path (so a proxy that
    rewrites hosts cannot send the client elsewhere), or None on the last page."""
    link = answer.get("next")
    if not link:
        return None
    return Call(current.method, current.path, params=dict(parse_qsl(urlsplit(link).query)))


def raise_for_problem(response: httpx2.Response) -> None:
    if response.status_code < 400:
        return
    raise error_for(problem_of(response), dict(response.headers))


def problem_of(response: httpx2.Response) -> Problem:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or "status" not in data:
        data = {
            "type": "about:blank",
            "title": response.reason_phrase,
            "status": response.status_code,
            "detail": response.text[:500],
        }
    return Problem.from_json(data)


def parse_json(response: httpx2.Response) -> Json:
    """An answer read as a plain object (an export document)."""
    raise_for_problem(response)
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def parse[M: Model](model: type[M], response: httpx2.Response) -> M:
    raise_for_problem(response)
    data = response.json()
    if model is Run and response.status_code == 202:
        data = {**data, "location": response.headers.get("Location", data.get("location"))}
    return model.from_json(data)


class SSEParser:
    """Server-sent events from lines (the WHATWG rules AgentFlow's stream needs: `id`,
    `event`, multi-line `data`, `retry`, comments); `data` is decoded as JSON."""

    def __init__(self) -> None:
        self.event_id: int | None = None
        self.retry: float | None = None
        self._event, self._data = "", list[str]()

    def feed(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and value.isdigit():
            self.event_id = int(value)
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None

    def _dispatch(self) -> Event | None:
        if not self._data and not self._event:
            return None
        text = "\n".join(self._data)
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError:
            data = text
        found = Event(self.event_id, self._event or "message", data)
        self._event, self._data = "", []
        return found


def stream_headers(last_event_id: int | None) -> dict[str, str]:
    # JSON named too: the server negotiates its error answers (a 404, a 401) as JSON, and
    # refuses (406) an Accept that names only the stream.
    headers = {"Accept": "text/event-stream, application/json;q=0.9"}
    if last_event_id:
        headers["Last-Event-ID"] = str(last_event_id)
    return headers
