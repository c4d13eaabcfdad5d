"""Keep credential values out of everything a run writes: state, trace, events, errors, logs.

A run's `Redactor` knows the value of every variable the tenant is granted (loaded when the run
starts) and of every credential the run reads (added as it reads them, with what is derived from
them: a Basic header, an OAuth2 access token). Each node's update, each error and each streamed
token passes through it before it reaches the state, the checkpoints or the observer; every
occurrence becomes `[redacted:NAME]`.

Redaction is the second line: it catches honest echoes (an API that quotes the key it was sent,
an SDK error that prints it). A host the tenant controls could send back any transformation of a
value, which is why a grant binds each variable to where it may go (runtime.grants).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from runtime.errors import NodeError
from runtime.events import NodeFinished, NodeStarted, RunObserver

MIN_LENGTH = 6
"""Shorter values are not redacted: they would mangle ordinary text, and are no credential."""
_DSN_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*'?([^'\s]+)")

MAX_KNOWN = 4096
"""Values the process-wide registry keeps for the log scrubber; the oldest go first (rotated
keys, expired access tokens)."""
_known: tuple[tuple[str, str], ...] = ()
_known_recent: dict[str, str] = {}
_known_lock = threading.Lock()


def known_secrets() -> tuple[tuple[str, str], ...]:
    """(value, marker) of every credential any run of this process loaded or read, longest
    first: the log scrubber masks them too."""
    return _known


def _remember(found: Mapping[str, str]) -> None:
    global _known
    with _known_lock:  # copy on write: the scrubber reads `_known` without the lock
        for value, mark in found.items():
            _known_recent.pop(value, None)
            _known_recent[value] = mark
        while len(_known_recent) > MAX_KNOWN:
            del _known_recent[next(iter(_known_recent))]
        ordered = sorted(_known_recent.items(), key=lambda item: len(item[0]), reverse=True)
        _known = tuple(ordered)


def marker(name: str) -> str:
    return f"[redacted:{name}]"


def variants(value: str) -> set[str]:
    """The forms a value travels in: as is, percent-encoded, and a URL's or DSN's password."""
    forms = {value, quote(value, safe=""), quote_plus(value)}
    try:
        password = urlsplit(value).password if "://" in value else None
    except ValueError:
        password = None
    match = _DSN_PASSWORD.search(value)
    forms |= {p for p in (password, match.group(1) if match else None) if p}
    return {form for form in forms if len(form) >= MIN_LENGTH}


@dataclass
class Redactor:
    """The values one run must never write anywhere, each with the variable it came from."""

    _markers: dict[str, str] = field(default_factory=dict)
    """Value (in each of its forms) → its marker."""
    _ordered: tuple[str, ...] = ()
    _escaped: tuple[str, ...] = ()
    """The values as they appear inside JSON text (for the quick check of a whole result)."""

    @classmethod
    def of(cls, values: Mapping[str, str]) -> Redactor:
        redactor = cls()
        for name, value in values.items():
            redactor.add(name, value)
        return redactor

    def add(self, name: str, value: str) -> None:
        """Redact `value` (and its encodings) as `[redacted:name]` from now on."""
        new = {form: marker(name) for form in variants(value) if form not in self._markers}
        if not new:
            return
        self._markers.update(new)
        self._ordered = tuple(sorted(self._markers, key=len, reverse=True))
        self._escaped = tuple(json.dumps(v, ensure_ascii=False)[1:-1] for v in self._ordered)
        _remember(new)

    def __bool__(self) -> bool:
        return bool(self._markers)

    def text(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, self._markers[value])
        return text

    def value(self, value: Any) -> Any:
        """`value` (JSON-like) with every secret replaced; the same object when it holds none."""
        if not self._markers or not self._holds_secret(value):
            return value
        return self._walk(value)

    def error(self, error: NodeError) -> NodeError:
        """The error, its message redacted (in place: the message is also its args)."""
        if self._markers:
            error.message = self.text(error.message)
            error.args = (error.message,)
        return error

    def split_stream(self, text: str) -> tuple[str, str]:
        """(what may be sent now, what to hold back): `text` redacted, less the end that could
        be the start of a secret completed by the next delta."""
        text = self.text(text)
        hold = max((_overlap(text, value) for value in self._ordered), default=0)
        return (text[: len(text) - hold], text[len(text) - hold :]) if hold else (text, "")

    def _holds_secret(self, value: Any) -> bool:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, TypeError, RecursionError):
            return True  # cannot tell quickly: look at every part
        return any(escaped in text for escaped in self._escaped)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(item) for item in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            return self._markers.get(str(value), value)
        return self.text(str(value))


def _overlap(text: str, value: str) -> int:
    """The length of the longest end of `text` that is a proper start of `value`."""
    start = max(0, len(text) - len(value) + 1)
    for i in range(start, len(text)):
        if text[i] == value[0] and value.startswith(text[i:]):
            return len(text) - i
    return 0


def note_derived(env: Any, name: str, value: str) -> None:
    """Tell the run reading credentials through `env` that `value` is derived from the variable
    `name` (a Basic header, an access token), so that it is redacted too."""
    note = getattr(env, "note", None)
    if note is not None:
        note(name, value)


class RedactingObserver:
    """Passes a run's events on with credentials redacted. Streamed tokens are held back while
    they could be the start of a secret, so one split across deltas is still caught."""

    def __init__(self, inner: RunObserver, redactor: Redactor) -> None:
        self.inner = inner
        self.redactor = redactor
        self._held: dict[str, str] = {}

    async def node_started(self, event: NodeStarted) -> None:
        await self.inner.node_started(event)

    async def node_token(self, node_id: str, delta: str) -> None:
        ready, held = self.redactor.split_stream(self._held.pop(node_id, "") + delta)
        if held:
            self._held[node_id] = held
        if ready:
            await self.inner.node_token(node_id, ready)

    async def node_finished(self, event: NodeFinished) -> None:
        held = self._held.pop(event.node_id, "")
        if held:
            await self.inner.node_token(event.node_id, held)
        # The output is the node's update, redacted where it was made (runtime.execute).
        redact = self.redactor.value
        await self.inner.node_finished(
            replace(event, error=redact(event.error), details=redact(event.details))
        )
