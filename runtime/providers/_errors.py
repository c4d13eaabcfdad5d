"""Turn a provider SDK's failures into `ProviderError`s that say whether a retry could help.

Each adapter module translates its own SDK's exception classes with the helpers here; `translated`
wraps a call so that only `ProviderError` (or `MissingCredential`) ever leaves an adapter.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import pydantic

from runtime.egress.guard import EgressRefused
from runtime.errors import InvalidRequest, ProviderError

RETRYABLE_STATUSES = frozenset({408, 409, 429})
"""Besides every 5xx: a timeout, a conflict (OpenAI's lock contention) and a rate limit."""
REDACTED = "[redacted]"

Translator = Callable[[Exception], ProviderError | None]
"""One SDK's exception → a ProviderError, or None when the exception is not the provider's."""


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def retry_after_seconds(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds the provider asked us to wait (`retry-after-ms`, `retry-after`), or None."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        seconds = _number(value)
        if seconds is None and divisor == 1.0:
            seconds = _seconds_until(value, time.time() if now is None else now)
        if seconds is not None:
            return max(seconds / divisor, 0.0)
    return None


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _seconds_until(http_date: str, now: float) -> float | None:
    parsed = email.utils.parsedate_tz(http_date)
    try:
        return None if parsed is None else email.utils.mktime_tz(parsed) - now
    except (ValueError, OverflowError):  # a year the calendar cannot hold
        return None


def body_message(body: object) -> str | None:
    """The provider's own error message in `{"error": {"message": …}}` or `{"message": …}`."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("message")
    return message if isinstance(message, str) else None


def status_error(
    provider: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    retryable = is_retryable_status(status)
    return ProviderError(
        f"{provider} answered HTTP {status}: {message}",
        status=status,
        retryable=retryable,
        retry_after=retry_after_seconds(headers) if retryable else None,
    )


def timeout_error(provider: str, timeout: float) -> ProviderError:
    return ProviderError(
        f"{provider} did not answer within {timeout:g} s (timeout); a retry may succeed.",
        retryable=True,
    )


def connection_error(provider: str, detail: str) -> ProviderError:
    return ProviderError(f"Could not reach {provider}: {detail}", retryable=True)


def malformed_error(provider: str, detail: str) -> ProviderError:
    return ProviderError(f"{provider} sent a response AgentFlow could not read: {detail}")


def is_malformed_body(exc: Exception) -> bool:
    """A body that is not JSON, or JSON of the wrong shape (raised while the SDK parses it)."""
    return isinstance(exc, json.JSONDecodeError | pydantic.ValidationError)


def unencodable(exc: UnicodeEncodeError) -> InvalidRequest:
    """What the SDK could not encode: text that is not Unicode, or a header that is not ASCII."""
    char = exc.object[exc.start : exc.start + 1]
    where = (
        "text sent to the model must be valid Unicode: remove it from the prompt or the state "
        "it comes from"
        if exc.encoding.replace("-", "").lower() == "utf8"
        else "it went into an HTTP header, which carries ASCII only: check the source's "
        "organization, deployment, api_version and model_name"
    )
    return InvalidRequest(
        f"The request was not sent: the character {char!r} (U+{ord(char):04X}) cannot be "
        f"encoded as {exc.encoding} ({exc.reason}); {where}."
    )


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret else text


@contextmanager
def translated(translate: Translator, *, secret: str | None = None) -> Iterator[None]:
    """Re-raise the SDK's failures inside the block as `ProviderError`s, the secret redacted."""
    try:
        yield
    except ProviderError as raised:
        _redact_error(raised, secret)
        raise
    except Exception as exc:
        refused = _egress_refusal(exc)
        if refused is not None:  # some SDKs wrap it (anthropic: APIConnectionError)
            raise refused from None
        translation = translate(exc)
        if translation is None and isinstance(exc, UnicodeEncodeError):
            raise unencodable(exc) from None
        if translation is None:
            raise
        _redact_error(translation, secret)
        if secret and secret in str(exc):
            raise translation from None  # the SDK's text would carry the secret into tracebacks
        raise translation from exc


def _egress_refusal(exc: BaseException) -> EgressRefused | None:
    """The egress door's refusal behind an SDK's exception, however deep it was wrapped."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _redact_error(error: ProviderError, secret: str | None) -> None:
    if secret and secret in error.message:
        error.message = redact(error.message, secret)
        error.args = (error.message,)
