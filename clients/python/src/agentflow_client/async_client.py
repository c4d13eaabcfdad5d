"""The asyncio client: `sync_client.AgentFlow`'s methods, awaited; lists and events are async
iterators. Close an events iterator you leave early (`contextlib.aclosing`) to end its stream."""

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

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
from agentflow_client.sync_client import USER_AGENT, Format, Mode, Spec, Target


class AsyncAgentFlow:
    """AgentFlow's API with one key, for asyncio: `async with AsyncAgentFlow(url, key) as af`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        stream_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        max_reconnects: int = 5,
        transport: httpx2.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx2.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key, "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )
        self._stream_timeout = httpx2.Timeout(timeout, read=stream_timeout)
        self._retry = retry or RetryPolicy()
        self._max_reconnects = max_reconnects
        self._sleep, self._clock = sleep, clock

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- requests ------------------------------------------------------------------------

    async def _send(self, call: r.Call) -> httpx2.Response:
        attempt = 0
        while True:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=call.headers
            )
            delay = self._retry.delay(attempt, response)
            if delay is None:
                return response
            attempt += 1
            await self._sleep(delay)

    async def _read[M: Model](self, model: type[M], call: r.Call) -> M:
        return r.parse(model, await self._send(call))

    async def _pages[M: Model](self, model: type[M], call: r.Call | None) -> AsyncIterator[M]:
        while call is not None:
            response = await self._send(call)
            r.raise_for_problem(response)
            answer = response.json()
            for item in answer["results"]:
                yield model.from_json(item)
            call = r.next_page(call, answer)

    # --- the API -------------------------------------------------------------------------

    async def me(self) -> Me:
        return await self._read(Me, r.call(r.ME))

    async def validate(
        self,
        spec: Spec,
        *,
        node: str | None = None,
        estimate: bool = False,
        initial_state: Mapping[str, Any] | None = None,
    ) -> ValidationResult:
        call = r.validate_call(spec, node, estimate=estimate, initial_state=initial_state)
        return await self._read(ValidationResult, call)

    async def create_workflow(self, spec: Spec) -> Workflow:
        return await self._read(Workflow, r.call(r.WORKFLOW_CREATE, body={"spec": dict(spec)}))

    async def get_workflow(self, workflow_id: str) -> Workflow:
        return await self._read(Workflow, r.call(r.WORKFLOW, workflow_id=workflow_id))

    async def update_workflow(self, workflow_id: str, spec: Spec) -> Workflow:
        call = r.call(r.WORKFLOW_UPDATE, body={"spec": dict(spec)}, workflow_id=workflow_id)
        return await self._read(Workflow, call)

    async def delete_workflow(self, workflow_id: str) -> None:
        call = r.call(r.WORKFLOW_DELETE, workflow_id=workflow_id)
        r.raise_for_problem(await self._send(call))

    async def export_workflow(self, workflow_id: str) -> Json:
        return r.parse_json(await self._send(r.call(r.EXPORT, workflow_id=workflow_id)))

    async def import_workflow(
        self,
        document: str | Spec,
        *,
        name: str | None = None,
        format: Format | None = None,
        source_map: Mapping[str, str] | None = None,
        api_key_env: str | None = None,
    ) -> Imported:
        call = r.import_call(
            document, name=name, format=format, source_map=source_map, api_key_env=api_key_env
        )
        return await self._read(Imported, call)

    def list_workflows(self, **filters: Any) -> AsyncIterator[WorkflowSummary]:
        return self._pages(WorkflowSummary, r.list_call(r.WORKFLOWS, filters))

    async def execute(
        self,
        workflow: Target,
        initial_state: Mapping[str, Any] | None = None,
        *,
        background: bool = False,
        idempotency_key: str | None = None,
        version: int | None = None,
        timeout_seconds: float | None = None,
    ) -> Run:
        call = r.execute_call(
            workflow,
            initial_state,
            background=background,
            idempotency_key=idempotency_key,
            version=version,
            timeout_seconds=timeout_seconds,
        )
        return await self._read(Run, call)

    async def get_execution(self, execution_id: str) -> Execution:
        return await self._read(Execution, r.call(r.EXECUTION, execution_id=execution_id))

    def list_executions(self, **filters: Any) -> AsyncIterator[ExecutionSummary]:
        return self._pages(ExecutionSummary, r.list_call(r.EXECUTIONS, filters))

    async def cancel(self, execution_id: str) -> ExecutionSummary:
        return await self._read(ExecutionSummary, r.call(r.CANCEL, execution_id=execution_id))

    async def replay(
        self,
        execution_id: str,
        *,
        version: int | None = None,
        from_node: str | None = None,
        mode: Mode | None = None,
        initial_state: Mapping[str, Any] | None = None,
    ) -> Run:
        call = r.replay_call(
            execution_id,
            version=version,
            from_node=from_node,
            mode=mode,
            initial_state=initial_state,
        )
        return await self._read(Run, call)

    async def wait(
        self, execution_id: str, timeout: float = 300.0, *, poll: float = 0.5
    ) -> Execution:
        deadline = self._clock() + timeout
        while True:
            execution = await self.get_execution(execution_id)
            if execution.finished or execution.status == "waiting":
                return execution
            if self._clock() >= deadline:
                raise TimeoutError(f"{execution_id} is still {execution.status} after {timeout} s")
            await self._sleep(poll)

    async def events(
        self, execution_id: str, last_event_id: int | None = None
    ) -> AsyncGenerator[Event]:
        path = r.EVENTS.path.format(execution_id=execution_id)
        last, failures = last_event_id, 0
        while True:
            parser = r.SSEParser()
            try:
                response = await self._open_stream(path, last)
                try:
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        failures, last = 0, event.id if event.id is not None else last
                        yield event
                        if event.event == "end":
                            return
                finally:
                    await response.aclose()
            except httpx2.TransportError:
                failures += 1
                if failures > self._max_reconnects:
                    raise
            else:
                if (await self.get_execution(execution_id)).finished:
                    return
            await self._sleep(parser.retry or 1.0)

    async def _open_stream(self, path: str, last: int | None) -> httpx2.Response:
        attempt = 0
        while True:
            request = self._http.build_request(
                "GET", path, headers=r.stream_headers(last), timeout=self._stream_timeout
            )
            response = await self._http.send(request, stream=True)
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            delay = self._retry.delay(attempt, response)
            if delay is None:
                r.raise_for_problem(response)
            attempt += 1
            await self._sleep(delay or 0.0)
