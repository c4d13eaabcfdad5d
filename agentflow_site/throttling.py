from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from agentflow_site.auth import Principal


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per key, counted in the shared cache (database or Redis), so every web
    process sees the same count. Exceeded: 429 with `Retry-After`."""

    scope = "api_key"

    def get_rate(self) -> str:
        # Read per request, not at import, so an operator's setting (and a test's) applies.
        return str(settings.API_THROTTLE_RATE)

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        own = principal.api_key.rate_limit if isinstance(principal, Principal) else ""
        self.rate = own or self.get_rate()  # a key's own rate, set by an admin, wins
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        principal = request.user
        if not isinstance(principal, Principal):
            return None  # unauthenticated requests never get this far
        return self.cache_format % {"scope": self.scope, "ident": principal.api_key.prefix}
