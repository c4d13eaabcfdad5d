"""Error tracking with Sentry: off unless SENTRY_DSN is set.

What is reported: exceptions no view handled (Django's integration, and the API's own 500s,
which `ProblemErrorsMiddleware` answers itself), exceptions that escape a process (the run
worker's included), and runs that failed through AgentFlow's fault (`internal_error`,
`worker_lost`), never a tenant's bad spec, input, provider answer or timeout. Each event is
tagged with what the logs bind (request id, tenant, execution, workflow, node), and scrubbed
whole before it leaves the process with the logs' masking (agentflow_site.logging): every
string is masked for API keys, Authorization values and credential values, every field whose
name says credential is replaced. Local variables and tracing are off unless asked for.

Integrations are named, not auto-enabled: sentry-sdk's OpenAI/Anthropic/LangGraph integrations
would report a tenant's provider errors (a bad key, a 429) as AgentFlow's, and record prompts.
Log lines are breadcrumbs only; an event is raised where AgentFlow decides it is one.
"""

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import sentry_sdk
import structlog
from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

from agentflow_site.logging import REDACTED, SECRET_FIELD_RE, scrub_text

TAGGED = ("request_id", "tenant", "execution_id", "workflow_id", "node_id", "trace_id")
"""Fields the logs bind (structlog contextvars) that an event carries as tags."""
INTERNAL_RUN_ERRORS = frozenset({"internal_error", "worker_lost"})
"""Run error codes that are AgentFlow's fault: reported. Every other code is the tenant's (its
spec, input, sources, providers, limits) and is not."""
UNSCRUBBED_KEYS = frozenset({"modules"})
"""Top-level event fields whose keys are package names, not fields (`…-api-key` is a package)."""
_STRUCTLOG_META = frozenset({"event", "_record", "_from_structlog", "timestamp", "level", "logger"})


@dataclass(frozen=True)
class SentryConfig:
    dsn: str
    environment: str
    release: str
    traces_sample_rate: float | None = None
    include_local_variables: bool = False


def init_sentry(config: SentryConfig) -> None:
    """Start reporting to `config.dsn` (nothing when it is empty)."""
    if not config.dsn:
        return
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    sentry_sdk.init(
        dsn=config.dsn,
        environment=config.environment,
        release=config.release,
        # What send_default_pii=False collects, spelled out (that option is deprecated, and a
        # data_collection given in its place collects everything it does not name): no user,
        # cookies, query parameters of SQL breadcrumbs, queue payloads, prompts.
        data_collection={
            "user_info": False,
            "cookies": {"mode": "off"},
            "http_bodies": ["incoming_request"],
            "database_query_data": False,
            "queues": False,
            "graphql": {"document": False, "variables": False},
            "gen_ai": {"inputs": False, "outputs": False},
            "stack_frame_variables": config.include_local_variables,
        },
        traces_sample_rate=config.traces_sample_rate,
        auto_enabling_integrations=False,
        integrations=[
            DjangoIntegration(signals_spans=False),
            LoggingIntegration(level=logging.INFO, event_level=None, sentry_logs_level=None),
        ],
        before_send=before_send,
        before_breadcrumb=before_breadcrumb,
    )


def enabled() -> bool:
    return sentry_sdk.get_client().is_active()


def capture_exception(exc: BaseException, **tags: str) -> None:
    """Report an exception AgentFlow handled itself (answered as a 500, say)."""
    if not enabled():
        return
    with sentry_sdk.new_scope() as scope:
        for name, value in tags.items():
            scope.set_tag(name, value)
        sentry_sdk.capture_exception(exc)


def report_run_failure(
    *, execution_id: str, tenant: str, workflow_id: str | None, error: Mapping[str, Any]
) -> None:
    """Report a run that ended with one of INTERNAL_RUN_ERRORS. With an exception being handled
    (a run that crashed here) the event carries its stack; else the run's recorded error."""
    code = str(error.get("code") or "")
    if code not in INTERNAL_RUN_ERRORS or not enabled():
        return
    message = str(error.get("message") or "")
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("execution_id", execution_id)
        scope.set_tag("tenant", tenant)
        scope.set_tag("run_error", code)
        if workflow_id:
            scope.set_tag("workflow_id", workflow_id)
        scope.set_context("run", {"error_code": code, "message": message, **_node(error)})
        # One issue per kind of failure, not one per execution (their messages name ids).
        scope.fingerprint = ["run-failure", code, message.partition(":")[0][:80]]
        if sys.exc_info()[1] is not None:
            sentry_sdk.capture_exception()
        else:
            sentry_sdk.capture_message(f"Run failed: {code}: {message[:200]}", level="error")


def _node(error: Mapping[str, Any]) -> dict[str, str]:
    node_id = error.get("node_id")
    return {"node_id": str(node_id)} if node_id else {}


def before_send(event: Event, hint: Hint) -> Event:
    """Tag the event with the ids the logs carry, then scrub all of it."""
    tags = event.setdefault("tags", {})
    for name, value in structlog.contextvars.get_contextvars().items():
        if name in TAGGED and value is not None and name not in tags:
            tags[name] = str(value)[:200]
    scrubbed = {
        key: _scrub(value, mask_keys=key not in UNSCRUBBED_KEYS) for key, value in event.items()
    }
    return cast(Event, scrubbed)


def _scrub(value: Any, *, mask_keys: bool = True) -> Any:
    """Every string masked; with `mask_keys`, every credential-named field replaced. The event
    is already serialized (JSON types, depth bounded by the SDK), so it is walked whole."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if mask_keys and isinstance(k, str) and SECRET_FIELD_RE.search(k)
            else _scrub(v, mask_keys=mask_keys)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, mask_keys=mask_keys) for v in value]
    return value


def before_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb:
    """A structlog line as a breadcrumb: its event name as the message, its fields as data (so
    credential-named fields are masked by name, as in the logs), not the repr of its dict."""
    record = (hint or {}).get("log_record")
    fields = getattr(record, "msg", None)
    if isinstance(fields, dict):
        crumb["message"] = str(fields.get("event", ""))
        crumb["data"] = {
            str(k): v if isinstance(v, int | float | bool) else str(v)
            for k, v in fields.items()
            if k not in _STRUCTLOG_META
        }
    return crumb
