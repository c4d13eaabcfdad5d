"""A typed Python client, sync and async, for AgentFlow's HTTP API (`/api/v1`)."""

from agentflow_client.async_client import AsyncAgentFlow
from agentflow_client.errors import (
    AgentFlowError,
    AuthenticationError,
    BadRequest,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
)
from agentflow_client.models import (
    FINISHED,
    Event,
    Execution,
    ExecutionSummary,
    Me,
    NodeRun,
    Problem,
    Run,
    SpecError,
    ValidationResult,
    Workflow,
    WorkflowSummary,
)
from agentflow_client.retry import NO_RETRY, RetryPolicy
from agentflow_client.sync_client import AgentFlow

__all__ = [
    "FINISHED",
    "NO_RETRY",
    "AgentFlow",
    "AgentFlowError",
    "AsyncAgentFlow",
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "Event",
    "Execution",
    "ExecutionSummary",
    "InvalidRequest",
    "Me",
    "NodeRun",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Problem",
    "RateLimited",
    "RetryPolicy",
    "Run",
    "ServerError",
    "SpecError",
    "ValidationResult",
    "Workflow",
    "WorkflowSummary",
]
