from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload
from urllib.parse import quote, urlencode

from pydantic import JsonValue

from runtime.context import RunContext
from runtime.egress.headers import RESERVED_HEADERS, header_problem
from runtime.errors import InvalidRequest, ProviderError
from runtime.node_metadata import HTTPMetadata
from runtime.nodes.base import Node, NodeOutput, State
from runtime.providers._errors import retry_after_seconds
from runtime.providers.http import HTTPResponse, HTTPSource


class HTTPNode(Node):
    """Calls the source's API (SPEC §2 `http`) and writes `http_result` `{status, body}`.

    A 2xx, 3xx or 4xx answer is a result, so the workflow can branch on `http_result.status`;
    a 429 or 5xx still there after the retries fails the node with a retryable ProviderError.
    Values a path template takes from the state are percent-encoded whole ('/', '?', '#' and
    '..' included), so they fill one path segment and cannot leave the path the template gives.
    """

    kind = "http"
    result_key = "http_result"
    meta: HTTPMetadata

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        source: HTTPSource = self.adapter(ctx)
        path, query, headers, body = await self.evaluate(lambda: self._request(state))
        ctx.note_input(self.node_id, _given(self.meta.method, source, path, query, body))
        response = await source.request(
            self.meta.method,
            path,
            query=query,
            headers=headers,
            json_body=body,
            timeout=self.meta.timeout,
            retries=self.meta.retries,
        )
        if response.status == 429 or response.status >= 500:
            raise self._failed(response, source)
        return NodeOutput(
            result={"status": response.status, "body": response.body},
            details={"status": response.status, "attempts": response.attempts},
        )

    def _request(self, state: State) -> tuple[str, dict[str, str], dict[str, str], JsonValue]:
        """The path, query, headers and body, rendered against the state."""
        return (
            self.render(self.meta.path, _QuotedMap(state)),
            {name: self._query_value(v, state) for name, v in self.meta.query.items()},
            self._headers(state),
            self._body(self.meta.body, state),
        )

    def _query_value(self, value: str | int | float | bool, state: State) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return self.render(value, state) if isinstance(value, str) else str(value)

    def _headers(self, state: State) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, template in self.meta.headers.items():
            if name.lower() in RESERVED_HEADERS:
                raise InvalidRequest(
                    f"The header {name!r} is set by AgentFlow itself; remove it from the node.",
                    node_id=self.node_id,
                )
            # Spaces around a field value are not part of it (RFC 9110 §5.5); h11 refuses them.
            value = self.render(template, state).strip(" \t")
            problem = header_problem(name, value)
            if problem:
                raise InvalidRequest(
                    f"Node '{self.node_id}' cannot send its metadata.headers: {problem}.",
                    node_id=self.node_id,
                )
            headers[name] = value
        return headers

    def _body(self, value: JsonValue, state: State) -> JsonValue:
        if isinstance(value, str):
            return self.render(value, state)
        if isinstance(value, dict):
            return {key: self._body(item, state) for key, item in value.items()}
        if isinstance(value, list):
            return [self._body(item, state) for item in value]
        return value

    def _failed(self, response: HTTPResponse, source: HTTPSource) -> ProviderError:
        return ProviderError(
            f"{source.host} answered HTTP {response.status} after {response.attempts} attempt(s); "
            "the API is failing or rate-limiting, so a later retry may succeed.",
            node_id=self.node_id,
            status=response.status,
            retryable=True,
            retry_after=retry_after_seconds(response.headers),
        )


def _given(
    method: str, source: HTTPSource, path: str, query: Mapping[str, str], body: JsonValue
) -> dict[str, Any]:
    """What the trace keeps of a request: its method, URL and body; never its headers, which
    may carry credentials."""
    url = source.url(path) + (f"?{urlencode(query)}" if query else "")
    return {"method": method, "url": url} | ({"body": body} if body is not None else {})


def _quoted(value: Any) -> Any:
    if isinstance(value, str):
        return quote(value, safe="")
    if isinstance(value, Mapping):
        return _QuotedMap(value)
    if isinstance(value, list | tuple):
        return _QuotedList(value)
    return value


class _QuotedMap(Mapping[str, Any]):
    """A read-only view of the state whose strings come out percent-encoded (for path templates)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return _quoted(self._data[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __str__(self) -> str:
        return quote(json.dumps(self._data, default=str), safe="")


class _QuotedList(Sequence[Any]):
    def __init__(self, data: Sequence[Any]) -> None:
        self._data = data

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return _QuotedList(self._data[index])
        return _quoted(self._data[index])

    def __len__(self) -> int:
        return len(self._data)

    def __str__(self) -> str:
        return quote(json.dumps(list(self._data), default=str), safe="")
