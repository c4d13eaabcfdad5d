"""How a node attempt is retried and bounded in time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from runtime.errors import NodeError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    """Attempts in all, the first included; 1 means no retry."""
    initial_interval: float = 0.5
    """Seconds before the second attempt."""
    backoff_factor: float = 2.0
    """Each wait is this many times the one before."""
    max_interval: float = 10.0
    """The longest wait, in seconds, unless the provider asked for longer (Retry-After)."""

    def wait_before(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        computed = min(
            self.initial_interval * self.backoff_factor ** (attempt - 1), self.max_interval
        )
        asked = getattr(error, "retry_after", None)
        return max(computed, float(asked)) if isinstance(asked, int | float) else computed


NO_RETRY = RetryPolicy()


def is_retryable(error: BaseException) -> bool:
    """Only failures a retry could fix: provider 429/5xx, timeouts, connection errors."""
    return isinstance(error, NodeError) and bool(error.retryable)


def retrying(policy: RetryPolicy, sleep: Callable[[float], Awaitable[None]]) -> AsyncRetrying:
    """A tenacity loop: `async for attempt in retrying(...): with attempt: ...`."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.wait_before(state.attempt_number, error)

    sleeper: Any = sleep
    return AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=retry_if_exception(is_retryable),
        sleep=sleeper,
        reraise=True,
    )
