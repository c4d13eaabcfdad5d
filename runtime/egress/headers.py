"""What an outbound request's headers may hold, and which of them may leave the source's origin.

Cross-origin, a rule and not a list of known credential names: only the headers in
`CROSS_ORIGIN_SAFE` (content negotiation, caching, the user agent) follow a redirect to another
origin; every other header — `Authorization`, `X-Goog-Api-Key`, `Ocp-Apim-Subscription-Key`,
`X-Functions-Key`, and whatever a vendor invents next — is dropped there.

`literal_secret` finds a credential written into a spec's header value (`Bearer sk-…`, a known
key format, or a long random-looking string under a credential-like header name), so that the
validator can refuse it: credentials live in environment variables, never in a spec.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

# Headers the transport owns: a node setting them could smuggle a second request or another host.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)
CROSS_ORIGIN_SAFE = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-language",
        "content-type",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "pragma",
        "range",
        "user-agent",
    }
)
"""The only headers sent to an origin other than the source's own (after a redirect)."""
CREDENTIAL_NAME = re.compile(
    r"auth|key|token|secret|passw|pwd|session|cookie|signature|credential|bearer|sig\b|jwt",
    re.IGNORECASE,
)
"""A header name that suggests it carries a credential."""
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
# Visible ASCII, with spaces and tabs inside only: no line break, no control character.
_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?")
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_KNOWN_SECRET = re.compile(
    r"""
      \b(?:bearer|basic|token|digest|apikey)\s+[A-Za-z0-9._~+/=-]{8,}  # a scheme and its value
    | \bsk-[A-Za-z0-9_-]{8,}                      # OpenAI, Anthropic (sk-ant-…), DeepSeek…
    | \b[sr]k_(?:live|test)_[A-Za-z0-9]{8,}       # Stripe
    | \bgh[pousr]_[A-Za-z0-9]{20,} | \bgithub_pat_\w{20,} | \bglpat-[\w-]{20,}
    | \bxox[abprs]-[A-Za-z0-9-]{10,}              # Slack
    | \bAKIA[0-9A-Z]{16}\b                        # AWS access key id
    | \bAIza[0-9A-Za-z_-]{35}                     # Google API key
    | \beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.  # a JWT
    | -----BEGIN[A-Z ]*PRIVATE\ KEY-----
    """,
    re.IGNORECASE | re.VERBOSE,
)
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=:-]{16,}")
MIN_SECRET_ENTROPY = 3.0
"""Bits per character above which a 16+ character token under a credential-like name is a key."""


def header_problem(name: str, value: str) -> str | None:
    """Why HTTP cannot carry this header as it stands, or None (never quoting the value)."""
    if not _HEADER_NAME.fullmatch(name):
        return (
            f"the header name {name[:100]!r} is not one HTTP allows (letters, digits and "
            "!#$%&'*+-.^_`|~ only)"
        )
    if not _HEADER_VALUE.fullmatch(value):
        return (
            f"the value of the header {name!r} holds a line break, a control character, a "
            "non-ASCII character or a space at either end, which HTTP headers cannot carry"
        )
    return None


def cross_origin(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers that may follow a redirect to another origin (see `CROSS_ORIGIN_SAFE`)."""
    return {name: value for name, value in headers.items() if name.lower() in CROSS_ORIGIN_SAFE}


def literal_secret(name: str, value: str) -> str | None:
    """Why the header's value (its text outside template tags) looks like a credential, or None.

    The reason never quotes the value.
    """
    literal = " ".join(_TEMPLATE.split(value))
    if _KNOWN_SECRET.search(literal):
        return f"the header {name!r} holds a credential (a key, token or password) in the spec"
    if CREDENTIAL_NAME.search(name) and any(
        _entropy(token) >= MIN_SECRET_ENTROPY for token in _TOKEN.findall(literal)
    ):
        return (
            f"the header {name!r} looks like a credential and holds a long random-looking value "
            "in the spec"
        )
    return None


def _entropy(text: str) -> float:
    """Shannon entropy of `text`, in bits per character."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
