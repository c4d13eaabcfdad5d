"""The operator's caps on one template render or rule evaluation, and the deadline the runtime sets.

The caps are process-wide (`configure` at start-up); the deadline is per task: the runtime wraps a
node's run in `evaluation_deadline(...)`, and every evaluation inside stops when it passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Caps on tenant-written templates (Jinja) and router rules (CEL); each field is the setting
    `AGENTFLOW_<FIELD NAME IN CAPITALS>` (see `setting_name`)."""

    template_max_seconds: float = 5.0
    """Wall-clock time one render may take when the runtime set no earlier deadline."""
    template_max_steps: int = 1_000_000
    """Loop iterations and calls (macros, methods, globals) one render may make together."""
    template_max_range: int = 100_000
    """Items all `range()` calls of one render may produce together."""
    template_max_value_bytes: int = 8 * MiB
    """Largest value one operation may build, shared parts counted at every use (a string's
    characters, 4 bytes each when not ASCII; 8 bytes per list or dict slot)."""
    template_max_built_bytes: int = 32 * MiB
    """Bytes of new strings, lists and numbers one render may build in all (freed or not)."""
    template_max_int_bits: int = 100_000
    """Largest integer an arithmetic operation may build, in bits (30,000 decimal digits)."""
    template_max_output_chars: int = 200_000
    """Longest text one render may produce, unless the caller asks for less."""
    template_cache_bytes: int = 4 * MiB
    """Source bytes (plus 1 KiB an entry) the caches of compiled and checked templates keep."""
    rule_max_seconds: float = 2.0
    """Wall-clock time one rule evaluation may take when the runtime set no earlier deadline."""
    rule_max_steps: int = 500_000
    """Comprehension iterations (`all`, `exists`, `exists_one`, `map`, `filter`) one rule may
    make, both as estimated before it runs and as counted while it runs."""
    rule_max_value: int = 10_000_000
    """Largest value (list elements or string bytes, nested ones counted) a rule may build, as
    estimated before it runs from its `+` and `map` and the sizes of the state it reads."""
    rule_cache_bytes: int = 1 * MiB
    """Source bytes (plus 256 bytes an entry) the cache of compiled rules keeps."""

    def __post_init__(self) -> None:
        for field in fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"{setting_name(field.name)} must be positive.")


def setting_name(field: str) -> str:
    """The environment variable that sets `field` (`template_max_steps` ->
    `AGENTFLOW_TEMPLATE_MAX_STEPS`)."""
    return f"AGENTFLOW_{field.upper()}"


Clock = Callable[[], float]
_config: list[tuple[SandboxLimits, Clock]] = [(SandboxLimits(), time.monotonic)]
_deadline: ContextVar[float | None] = ContextVar("sandbox_deadline", default=None)


def configure(limits: SandboxLimits, *, clock: Clock = time.monotonic) -> None:
    """Use `limits` for every evaluation from now on (call once at start-up, or in tests).

    Args:
        clock: the monotonic clock deadlines are read against (tests pass a fake one).
    """
    _config[0] = (limits, clock)


def current_limits() -> SandboxLimits:
    return _config[0][0]


def current_config() -> tuple[SandboxLimits, Clock]:
    return _config[0]


def current_deadline() -> float | None:
    """The deadline the runtime set for this task, as a reading of the configured clock."""
    return _deadline.get()


@contextmanager
def evaluation_deadline(deadline: float | None) -> Iterator[None]:
    """Stop every template and rule evaluated inside at `deadline` (a reading of the configured
    clock, `time.monotonic()` by default); an earlier deadline already set still holds, and None
    sets none."""
    outer = _deadline.get()
    if deadline is None or (outer is not None and outer <= deadline):
        deadline = outer
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)
