"""Errors: one class per kind of answer, each carrying the server's problem+json."""

from typing import Any

from agentflow_client.models import Problem


class AgentFlowError(Exception):
    """An error answer (4xx/5xx) from AgentFlow; its RFC 9457 problem is in `problem`."""

    def __init__(self, problem: Problem, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail}")
        self.problem = problem
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def type(self) -> str:
        return self.problem.type

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str:
        return self.problem.detail

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Each `{field, message}` (or, for a spec, `{type, message, node_id, path, …}`)."""
        return self.problem.errors

    @property
    def fields(self) -> list[str]:
        return self.problem.fields


class BadRequest(AgentFlowError):
    """400: a body or parameter that is not valid (the fields are named in `errors`)."""


class AuthenticationError(AgentFlowError):
    """401: a missing, wrong, expired or revoked key."""


class PermissionDenied(AgentFlowError):
    """403: the key's role may not do this."""


class NotFound(AgentFlowError):
    """404: no such object in the key's tenant."""


class Conflict(AgentFlowError):
    """409: not now (a run that already ended, a workflow with runs in flight)."""


class PayloadTooLarge(AgentFlowError):
    """413: a body over the server's limit."""


class InvalidRequest(BadRequest):
    """422: a spec that does not validate (its problems in `errors`), or a field refused
    (`Idempotency-Key` reused, an unknown `version`). `except BadRequest` catches both."""


class RateLimited(AgentFlowError):
    """429: the key exceeded its rate; `retry_after` says in how many seconds to try again."""

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers.get("retry-after"))


class ServerError(AgentFlowError):
    """5xx: the server failed (a `run_interrupted` names the `execution_id` in `problem.raw`)."""


BY_STATUS: dict[int, type[AgentFlowError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
}


def error_for(problem: Problem, headers: dict[str, str]) -> AgentFlowError:
    kind = BY_STATUS.get(problem.status)
    if kind is None:
        kind = ServerError if problem.status >= 500 else AgentFlowError
    return kind(problem, headers)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds (AgentFlow sends seconds; an HTTP date counts as unknown)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
