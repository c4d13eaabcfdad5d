"""The blocking client. `async_client.AsyncAgentFlow` has the same methods, awaited."""

import time
from collections.abc import Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, Self

import httpx2

from agentflow_client import routes as r
from agentflow_client.models import (
    Event,
    Execution,
    ExecutionSummary,
    Imported,
    Json,
    Me,
    Model,
    Run,
    ValidationResult,
    Workflow,
    WorkflowSummary,
)
from agentflow_client.retry import RetryPolicy

Spec = Mapping[str, Any]
Target = str | Spec | WorkflowSummary
Mode = Literal["sync", "async"]
Format = Literal["agentflow", "dify", "flowise"]
USER_AGENT = "agentflow-client/0.1"


class AgentFlow:
    """AgentFlow's API with one key: `AgentFlow("http://127.0.0.1:8000", key)`.

    Errors raise `AgentFlowError` subclasses (`NotFound`, `InvalidRequest`, …) carrying the
    problem+json. A 429 is retried after its `Retry-After` as `retry` says (once by default).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        stream_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        max_reconnects: int = 5,
        transport: httpx2.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx2.Client(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key, "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )
        # The server sends a keep-alive every 15 s: a stream silent for longer is reconnected.
        self._stream_timeout = httpx2.Timeout(timeout, read=stream_timeout)
        self._retry = retry or RetryPolicy()
        self._max_reconnects = max_reconnects
        self._sleep, self._clock = sleep, clock

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------

    def _send(self, call: r.Call) -> httpx2.Response:
        attempt = 0
        while True:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers
            )
            delay = self._retry.delay(attempt, response)
            if delay is None:
                return response
            attempt += 1
            self._sleep(delay)

    def _read[M: Model](self, model: type[M], call: r.Call) -> M:
        return r.parse(model, self._send(call))

    def _pages[M: Model](self, model: type[M], call: r.Call | None) -> Iterator[M]:
        while call is not None:
            response = self._send(call)
            r.raise_for_problem(response)
            answer = response.json()
            yield from (model.from_json(item) for item in answer["results"])
            call = r.next_page(call, answer)

    # --- the API -------------------------------------------------------------------------

    def me(self) -> Me:
        return self._read(Me, r.call(r.ME))

    def validate(
        self,
        spec: Spec,
        *,
        node: str | None = None,
        estimate: bool = False,
        initial_state: Mapping[str, Any] | None = None,
    ) -> ValidationResult:
        """Validate a spec (or one `node` of it): every problem at once, never raised.
        `estimate=True`: also a dry run's tokens and cost from `initial_state` (`.estimate`,
        None when the spec is not valid); nothing is called."""
        call = r.validate_call(spec, node, estimate=estimate, initial_state=initial_state)
        return self._read(ValidationResult, call)

    def create_workflow(self, spec: Spec) -> Workflow:
        return self._read(Workflow, r.call(r.WORKFLOW_CREATE, body={"spec": dict(spec)}))

    def get_workflow(self, workflow_id: str) -> Workflow:
        return self._read(Workflow, r.call(r.WORKFLOW, workflow_id=workflow_id))

    def update_workflow(self, workflow_id: str, spec: Spec) -> Workflow:
        """Replace the spec: a new version."""
        call = r.call(r.WORKFLOW_UPDATE, body={"spec": dict(spec)}, workflow_id=workflow_id)
        return self._read(Workflow, call)

    def delete_workflow(self, workflow_id: str) -> None:
        """Soft-delete; `Conflict` while a run of it is queued or running."""
        r.raise_for_problem(self._send(r.call(r.WORKFLOW_DELETE, workflow_id=workflow_id)))

    def export_workflow(self, workflow_id: str) -> Json:
        """The workflow as one document: every version and the stored sources they use."""
        return r.parse_json(self._send(r.call(r.EXPORT, workflow_id=workflow_id)))

    def import_workflow(
        self,
        document: str | Spec,
        *,
        name: str | None = None,
        format: Format | None = None,
        source_map: Mapping[str, str] | None = None,
        api_key_env: str | None = None,
    ) -> Imported:
        """A new workflow from an export (a dict, or JSON/YAML text), a Dify DSL or a Flowise
        chatflow (`format`: detected when None). `Conflict` for a taken name or a source of
        that name with another config; `InvalidRequest` naming where the document is wrong."""
        call = r.import_call(
            document, name=name, format=format, source_map=source_map, api_key_env=api_key_env
        )
        return self._read(Imported, call)

    def list_workflows(self, **filters: Any) -> Iterator[WorkflowSummary]:
        """Every stored workflow, page after page (filters: name, status, created_after,
        created_before, page_size)."""
        return self._pages(WorkflowSummary, r.list_call(r.WORKFLOWS, filters))

    def execute(
        self,
        workflow: Target,
        initial_state: Mapping[str, Any] | None = None,
        *,
        background: bool = False,
        idempotency_key: str | None = None,
        version: int | None = None,
        timeout_seconds: float | None = None,
    ) -> Run:
        """Run a spec (a mapping) or a stored workflow (its id, or a Workflow). At once: the
        outcome; `background=True`: queued, `run.accepted`, follow it with `events()`/`wait()`."""
        call = r.execute_call(
            workflow,
            initial_state,
            background=background,
            idempotency_key=idempotency_key,
            version=version,
            timeout_seconds=timeout_seconds,
        )
        return self._read(Run, call)

    def get_execution(self, execution_id: str) -> Execution:
        return self._read(Execution, r.call(r.EXECUTION, execution_id=execution_id))

    def list_executions(self, **filters: Any) -> Iterator[ExecutionSummary]:
        """The tenant's executions, newest first, all of them (filters: status, workflow,
        created_after, created_before, page_size)."""
        return self._pages(ExecutionSummary, r.list_call(r.EXECUTIONS, filters))

    def cancel(self, execution_id: str) -> ExecutionSummary:
        """Stop a queued, running or waiting run; `Conflict` when it already ended."""
        return self._read(ExecutionSummary, r.call(r.CANCEL, execution_id=execution_id))

    def replay(
        self,
        execution_id: str,
        *,
        version: int | None = None,
        from_node: str | None = None,
        mode: Mode | None = None,
        initial_state: Mapping[str, Any] | None = None,
    ) -> Run:
        """Run a finished execution again, its recorded provider answers reused; each option
        defaults to the run's own. The new execution's `replay_of` names this one."""
        call = r.replay_call(
            execution_id,
            version=version,
            from_node=from_node,
            mode=mode,
            initial_state=initial_state,
        )
        return self._read(Run, call)

    def wait(self, execution_id: str, timeout: float = 300.0, *, poll: float = 0.5) -> Execution:
        """The execution once it has ended, or waits for a person (`waiting`); TimeoutError
        after `timeout` seconds."""
        deadline = self._clock() + timeout
        while True:
            execution = self.get_execution(execution_id)
            if execution.finished or execution.status == "waiting":
                return execution
            if self._clock() >= deadline:
                raise TimeoutError(f"{execution_id} is still {execution.status} after {timeout} s")
            self._sleep(poll)

    def events(self, execution_id: str, last_event_id: int | None = None) -> Generator[Event]:
        """The run's events as they happen, after `last_event_id`, until its `end`. A dropped
        stream is reopened with `Last-Event-ID`, so no event is missed or repeated."""
        path = r.EVENTS.path.format(execution_id=execution_id)
        last, failures = last_event_id, 0
        while True:
            parser = r.SSEParser()
            try:
                response = self._open_stream(path, last)
                try:
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        failures, last = 0, event.id if event.id is not None else last
                        yield event
                        if event.event == "end":
                            return
                finally:
                    response.close()
            except httpx2.TransportError:
                failures += 1
                if failures > self._max_reconnects:
                    raise
            else:  # closed with no `end`: a restart, or a run that ended before it had events
                if self.get_execution(execution_id).finished:
                    return
            self._sleep(parser.retry or 1.0)

    def _open_stream(self, path: str, last: int | None) -> httpx2.Response:
        attempt = 0
        while True:
            request = self._http.build_request(
                "GET", path, headers=r.stream_headers(last), timeout=self._stream_timeout
            )
            response = self._http.send(request, stream=True)
            if response.status_code < 400:
                return response
            response.read()
            response.close()
            delay = self._retry.delay(attempt, response)
            if delay is None:
                r.raise_for_problem(response)
            attempt += 1
            self._sleep(delay or 0.0)
