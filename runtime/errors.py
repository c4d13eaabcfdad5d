"""The runtime's one error hierarchy: spec problems found before a run, node failures during one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, TypedDict


class ErrorType(StrEnum):
    """The `type` of a validation problem (SPEC §1, "Validation errors")."""

    SCHEMA = "schema"
    DUPLICATE_ID = "duplicate_id"
    MISSING_NODE = "missing_node"
    UNKNOWN_NODE_TYPE = "unknown_node_type"
    INVALID_METADATA = "invalid_metadata"
    UNKNOWN_SOURCE = "unknown_source"
    SOURCE_KIND_MISMATCH = "source_kind_mismatch"
    LITERAL_SECRET = "literal_secret"
    FORBIDDEN_SECRET_REF = "forbidden_secret_ref"
    INVALID_CONDITION = "invalid_condition"
    CYCLE = "cycle"
    ORPHAN_NODE = "orphan_node"
    INVALID_TEMPLATE = "invalid_template"
    INVALID_EXPRESSION = "invalid_expression"
    INVALID_QUEUE = "invalid_queue"
    SPEC_TOO_LARGE = "spec_too_large"


class SpecErrorDict(TypedDict):
    type: str
    message: str
    node_id: str | None
    path: str
    line: int | None
    column: int | None


@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem in a WorkflowSpec, located by a JSON Pointer (and line/column for JSON text)."""

    type: str
    message: str
    path: str = ""
    node_id: str | None = None
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> SpecErrorDict:
        return SpecErrorDict(
            type=self.type,
            message=self.message,
            node_id=self.node_id,
            path=self.path,
            line=self.line,
            column=self.column,
        )


class SpecValidationError(Exception):
    """Raised by callers that need a valid spec and were given one with errors."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        first = errors[0].message if errors else "The workflow spec is not valid."
        super().__init__(f"{len(errors)} problem(s) in the workflow spec; first: {first}")


class NodeError(Exception):
    """A node's run failed: `code` is stable (it reaches the API), `retryable` drives retries."""

    code: ClassVar[str] = "node_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id


class InvalidInput(NodeError):
    code = "invalid_input"


class TemplateRenderError(NodeError):
    code = "template_error"


class ExpressionError(NodeError):
    code = "expression_error"


class ReadOnlyViolation(NodeError):
    code = "read_only_violation"


class DatabaseError(NodeError):
    code = "db_error"


class ConnectionFailed(DatabaseError):
    """A database could not be reached or refused the login; a retry may help."""

    code = "db_connection_failed"
    retryable = True


class QueryTimeout(NodeError):
    """A query ran past its bound and was stopped (not retried: it would run as long again)."""

    code = "timeout"


class RateLimited(NodeError):
    code = "rate_limited"


class LoopLimitExceeded(NodeError):
    code = "loop_limit"


class NodeTimeout(NodeError):
    code = "timeout"
    retryable = True


class ProviderError(NodeError):
    """A provider call failed. `retryable` for 429, 5xx, timeouts and connection errors;
    `retry_after` (seconds) when the provider said how long to wait."""

    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, node_id=node_id)
        self.status = status
        self.retryable = retryable  # type: ignore[misc]
        self.retry_after = retry_after


class MissingCredential(NodeError):
    """The environment variable a source names is not set where the run happens."""

    code = "missing_credential"
