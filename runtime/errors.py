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
    UNKNOWN_WORKFLOW = "unknown_workflow"
    UNKNOWN_WORKFLOW_VERSION = "unknown_workflow_version"
    WORKFLOW_CYCLE = "workflow_cycle"
    WORKFLOW_DEPTH = "workflow_depth"
    INVALID_WORKFLOW = "invalid_workflow"


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


class TemplateLimitExceeded(TemplateRenderError):
    """A template went over one of the sandbox's caps; `limit` names it (a `SandboxLimits` field,
    or `deadline` when the node's or the run's timeout ran out first)."""

    code = "template_limit"

    def __init__(self, message: str, *, limit: str, node_id: str | None = None) -> None:
        super().__init__(message, node_id=node_id)
        self.limit = limit


class RuleLimitExceeded(ExpressionError):
    """A router rule went over one of the sandbox's caps; `limit` as for templates."""

    code = "rule_limit"

    def __init__(self, message: str, *, limit: str, node_id: str | None = None) -> None:
        super().__init__(message, node_id=node_id)
        self.limit = limit


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


class InvalidRequest(NodeError):
    """A request AgentFlow will not send as it stands (a header HTTP cannot carry, text that is
    not valid Unicode): the message names the field to change."""

    code = "invalid_request"


class InvalidCredential(NodeError):
    """A credential's value cannot be sent (a line break or a non-ASCII character in a key)."""

    code = "invalid_credential"


class ForbiddenSecretRef(NodeError):
    """A source would send a variable's value somewhere its grant does not bind it to (checked
    when the value is read, before anything is sent)."""

    code = "forbidden_secret_ref"


class InvalidResult(NodeError):
    """A node produced a result that is not JSON (a circular or far too deeply nested value)."""

    code = "invalid_result"


class ResultTooLarge(NodeError):
    """One node's update to the state is larger than the operator allows."""

    code = "result_too_large"


class StateTooLarge(NodeError):
    """The run's state has grown larger than the operator allows."""

    code = "state_too_large"


class FinalStateTooLarge(NodeError):
    """The run's final state is larger than a response may carry; its largest values were
    left out of it."""

    code = "final_state_too_large"


class ResourceLimit(NodeError):
    """The work asked for more memory or nesting than the server gives one node."""

    code = "resource_limit"


class PluginError(NodeError):
    """A node plugin's run function failed (or refused its input): the message names the
    plugin and the package it came from. Plugins may raise it themselves with a message for
    the user."""

    code = "plugin_error"
