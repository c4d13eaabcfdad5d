"""The one door every outbound HTTP request of a run goes through: http nodes and provider SDKs.

- `trust`: who opens which non-public host (the operator trusts, a source's allowed_hosts narrows).
- `addresses`: every spelling of an IP parsed, every embedding unwrapped; what is never reached.
- `guard`: resolve once, check every address for the port at hand, connect to the checked one.
- `headers`: which headers may leave the source's origin; credentials written into a spec.
- `door`: `Egress`, the http node's sender (redirects followed by hand, bodies capped).
- `transport`: `sdk_client`, the same checks for the provider SDKs (redirects refused).
"""

from runtime.egress.door import (
    DEFAULT_MAX_BYTES,
    Credentials,
    Egress,
    EgressResponse,
    OutboundRequest,
    ResponseTooLarge,
    decode_body,
    has_dot_segment,
)
from runtime.egress.guard import EgressRefused, Resolver, check_url, system_resolve
from runtime.egress.headers import header_problem
from runtime.egress.trust import EgressPolicy, HostRule

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Credentials",
    "Egress",
    "EgressPolicy",
    "EgressRefused",
    "EgressResponse",
    "HostRule",
    "OutboundRequest",
    "Resolver",
    "ResponseTooLarge",
    "check_url",
    "decode_body",
    "has_dot_segment",
    "header_problem",
    "system_resolve",
]
