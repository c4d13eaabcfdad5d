"""When a client asks again: a 429 (rate limited) answer, after its `Retry-After`."""

from dataclasses import dataclass

import httpx2

from agentflow_client.errors import retry_after_seconds

DEFAULT_WAIT = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries an answer of 429. Nothing else is retried: a 429 is refused
    before the server does anything, so asking again is safe for every method."""

    max_retries: int = 1
    """Retries after a 429; 0 raises `RateLimited` at once."""
    max_wait: float = 30.0
    """The longest `Retry-After` (seconds) waited for; a longer one is raised at once."""

    def delay(self, attempt: int, response: httpx2.Response) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or None: do not retry."""
        if response.status_code != 429 or attempt >= self.max_retries:
            return None
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        wait = DEFAULT_WAIT if wait is None else wait
        return wait if wait <= self.max_wait else None


NO_RETRY = RetryPolicy(max_retries=0)
