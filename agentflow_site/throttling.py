import re
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from agentflow_site.auth import Principal

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
PERIODS |= {"h": 3600, "hr": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"([1-9][0-9]{0,8})/([a-z]+?)s?")


def parse_rate(rate: str) -> tuple[int, int]:
    """`120/min` as (120, 60): at least one request per second, minute, hour or day.

    Raises:
        ValueError: `rate` is not that (`0/min` and `-5/min` included: either would refuse
            every request for ever).
    """
    match = _RATE.fullmatch(rate.strip())
    if match is None or match[2] not in PERIODS:
        raise ValueError(f"{rate!r} is not a rate; use requests/period, e.g. '120/min'.")
    return int(match[1]), PERIODS[match[2]]


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per key, counted in the shared cache (database or Redis), so every web
    process sees the same count. Exceeded: 429 with `Retry-After`."""

    scope = "api_key"

    def get_rate(self) -> str:
        # Read per request, not at import, so an operator's setting (and a test's) applies.
        return str(settings.API_THROTTLE_RATE)

    def parse_rate(self, rate: str | None) -> tuple[int, int]:
        return parse_rate(rate or "")

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        key = principal.api_key if isinstance(principal, Principal) else None
        own = key.rate_limit if key is not None else ""
        try:
            # A key's own rate, set by an admin, wins; one that is not a rate (saved before it
            # was checked, or through the admin) falls back to the server's.
            self.num_requests, self.duration = parse_rate(own)
            self.rate = own
        except ValueError:
            self.rate = self.get_rate()
            self.num_requests, self.duration = parse_rate(self.rate)
        return super().allow_request(request, view)

    def wait(self) -> float:
        """Seconds until the oldest request that still counts leaves the window: always > 0,
        so every 429 carries a `Retry-After` (DRF's estimate is None once a key's rate was
        lowered below what its window already holds)."""
        if not self.history:
            return float(self.duration)
        blocking = self.history[min(len(self.history), self.num_requests) - 1]
        return max(1.0, blocking + self.duration - self.now)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        principal = request.user
        if not isinstance(principal, Principal):
            return None  # unauthenticated requests never get this far
        return self.cache_format % {"scope": self.scope, "ident": principal.throttle_ident}
