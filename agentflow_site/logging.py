"""Structured logging: one JSON object a line, with the request id and tenant; secrets scrubbed.

A log line must never hold an API key, an Authorization header or the value of a credential
environment variable. `scrub_secrets` runs last before rendering and masks all three, wherever
in the event they appear (message, extra fields, exception text). Credential variables are those
whose names say so, those granted to every tenant (AGENTFLOW_ALLOWED_ENV), and every one a run of
this process loaded or read (a tenant's own grants included; runtime.redaction).
"""

import os
import re
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from typing import Any

import structlog

from runtime import telemetry
from runtime.grants import Grant, GrantError, parse_grant
from runtime.redaction import known_secrets

REDACTED = "[redacted]"
# Keys whose values are credentials, whatever they hold ("tokens", a count of LLM tokens, is not).
SECRET_FIELD_RE = re.compile(
    r"(authorization|api[-_]?key|password|passwd|secret|token(?!s)|cookie|session|dsn|"
    r"connection_string|database_url|redis_url)",
    re.IGNORECASE,
)
# An API key as issued: an 8-character prefix, a dot, a 32-character secret.
API_KEY_RE = re.compile(r"\b[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}\b")
AUTH_HEADER_RE = re.compile(r"((?:Api-Key|Bearer|Basic|Token)\s+)\S+", re.IGNORECASE)
# Environment variables whose values are credentials (their names say so).
SECRET_ENV_RE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|DSN|_URL|CONNECTION_STRING)$")
MIN_SECRET_LEN = 8


def _grant_entries() -> tuple[str, ...]:
    from django.conf import settings  # settings import this module: read them when logging

    try:
        return tuple(settings.AGENTFLOW_ALLOWED_ENV)
    except Exception:  # settings not configured yet (a line logged while they load)
        return ()


@lru_cache(maxsize=8)
def _parsed_grants(entries: tuple[str, ...]) -> tuple[Grant, ...]:
    """The operator's grants, parsed once per value of the setting."""
    grants = []
    for entry in entries:
        try:
            grants.append(parse_grant(entry))
        except GrantError:
            continue
    return tuple(grants)


def _secret_values(environ: Mapping[str, str], entries: tuple[str, ...]) -> tuple[str, ...]:
    grants = _parsed_grants(entries)
    values = {
        value
        for name, value in environ.items()
        if len(value) >= MIN_SECRET_LEN
        and (SECRET_ENV_RE.search(name.upper()) or any(g.names(name) for g in grants))
    }
    # Longest first, so a value that contains another is masked whole.
    return tuple(sorted(values, key=len, reverse=True))


# (the raw environment, the grants, their secret values) as last worked out.
_env_cache: tuple[dict[bytes, bytes] | None, tuple[str, ...], tuple[str, ...]] = (None, (), ())


def _secret_env_values() -> tuple[str, ...]:
    """Worked out again only when the environment or the grants change (tests change both).

    Telling whether the environment changed must cost next to nothing, as it runs for every
    log line: `os.environ.items()` decodes every name and value in Python (about 1 ms with a
    hundred variables, which was 14 % of a request), while comparing CPython's encoded mapping
    (`os.environ._data`) with a copy is one dict comparison in C.
    """
    global _env_cache
    raw: dict[bytes, bytes] | None = getattr(os.environ, "_data", None)
    entries = _grant_entries()
    seen, seen_entries, values = _env_cache
    if raw is None:  # not CPython's os._Environ: no cheap test, work it out each time
        return _secret_values(os.environ, entries)
    if seen is None or raw != seen or entries != seen_entries:
        snapshot = dict(raw)
        values = _secret_values(os.environ, entries)
        _env_cache = (snapshot, entries, values)  # one assignment: threads see old or new
    return values


def scrub_text(text: str, env_values: tuple[str, ...] | None = None) -> str:
    """Mask API keys, Authorization values and credential env values found in `text`."""
    for value, mark in known_secrets():  # longest first
        if value in text:
            text = text.replace(value, mark)
    for value in _secret_env_values() if env_values is None else env_values:
        if value in text:
            text = text.replace(value, REDACTED)
    text = API_KEY_RE.sub(REDACTED, text)
    return AUTH_HEADER_RE.sub(lambda m: m.group(1) + REDACTED, text)


def _scrub(value: Any, env_values: tuple[str, ...], depth: int = 0) -> Any:
    if depth > 8:
        return value
    if isinstance(value, str):
        return scrub_text(value, env_values)
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and SECRET_FIELD_RE.search(k)
            else _scrub(v, env_values, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, env_values, depth + 1) for v in value]
    return value


def scrub_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """A structlog processor: the last line of defence before a line is written."""
    return _scrub(dict(event), _secret_env_values())


def add_trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """A structlog processor: the current span's trace and span ids, when tracing (a line
    written away from its run's spans names its trace itself, `run_fields`)."""
    if "trace_id" not in event:
        ids = telemetry.current_ids()
        if ids is not None:
            event["trace_id"], event["span_id"] = ids
    return event


def run_fields(
    execution_id: str, workflow_id: str | None = None, trace_context: str = ""
) -> dict[str, str]:
    """What names a run in a log line, its trace, and the log context of its task:
    `execution_id`, `workflow_id` (a stored workflow's) and, from the trace context the run
    carries, `trace_id` (for lines written on a thread where its spans are not current)."""
    fields = {"execution_id": execution_id}
    if workflow_id:
        fields["workflow_id"] = workflow_id
    trace_id = telemetry.trace_id_of(trace_context)
    if trace_id:
        fields["trace_id"] = trace_id
    return fields


def configure_logging(*, level: str, fmt: str) -> dict[str, Any]:
    """Configure structlog and return Django's LOGGING dict (stdlib logs share the pipeline)."""
    pre_chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        add_trace_ids,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *pre_chain,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    scrub_secrets,
                    renderer,
                ],
                "foreign_pre_chain": pre_chain,
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Replace Django's own plain-text console handler: every line goes through ours.
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            "django.server": {"level": "WARNING"},
            "django_structlog": {"level": level},
            "uvicorn.access": {"level": "WARNING"},
        },
    }
