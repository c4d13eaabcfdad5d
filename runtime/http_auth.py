"""The credentials of an `http` source, read from the environment at call time.

`source_credentials` turns a source's `auth_method` into the headers and query parameters the
egress door attaches to requests on the source's own origin. OAuth2 client-credentials tokens come
from `token_url` (through the same door) and are cached until shortly before they expire, keyed by
the token URL, client id, scope and a digest of the secret (never the secret itself).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.egress import Credentials, Egress, OutboundRequest, decode_body
from runtime.errors import ProviderError
from runtime.providers.base import EnvLookup, MissingCredential
from runtime.redaction import note_derived
from runtime.source_configs import HTTPConfig

EXPIRY_MARGIN = 30.0
"""Seconds before a token's expiry at which a new one is fetched."""
DEFAULT_TOKEN_LIFETIME = 300.0
"""Seconds a token is kept when the server does not say (`expires_in` absent)."""

TokenKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class SourceAuth:
    credentials: Credentials
    secrets: tuple[str, ...]
    """Every secret value used, so error messages can be redacted."""


@dataclass
class TokenCache:
    """OAuth2 access tokens by (token_url, client_id, scope, secret digest), with their expiry."""

    clock: Callable[[], float] = time.monotonic
    _tokens: dict[TokenKey, tuple[str, float]] = field(default_factory=dict)

    def get(self, key: TokenKey) -> str | None:
        token, expires_at = self._tokens.get(key, ("", 0.0))
        return token if token and self.clock() < expires_at - EXPIRY_MARGIN else None

    def put(self, key: TokenKey, token: str, lifetime: float) -> None:
        self._tokens[key] = (token, self.clock() + lifetime)

    def forget(self, key: TokenKey) -> None:
        self._tokens.pop(key, None)


TOKEN_CACHE = TokenCache()
"""Shared by every run in the process, so a token serves many runs until it expires."""


def need(env: EnvLookup, name: str | None, field_name: str) -> str:
    """The value of the variable `name`, or a MissingCredential naming it."""
    if not name:
        raise MissingCredential(f"The http source names no {field_name}.")
    value = env(name)
    if not value:
        raise MissingCredential(
            f"The environment variable {name} ({field_name}) is not set on the server running "
            "this workflow."
        )
    return value


async def source_credentials(
    config: HTTPConfig, env: EnvLookup, egress: Egress, cache: TokenCache
) -> SourceAuth:
    """The credentials for one request, read now (a rotated secret takes effect at once)."""
    method = config.auth_method
    if method == "api_key":
        key = need(env, config.api_key_env, "api_key_env")
        if config.api_key_query:
            return SourceAuth(Credentials(query={config.api_key_query: key}), (key,))
        return SourceAuth(Credentials(headers={config.api_key_header: key}), (key,))
    if method == "bearer":
        token = need(env, config.token_env, "token_env")
        return SourceAuth(Credentials(headers=_bearer(token)), (token,))
    if method == "basic":
        return _basic(config, env)
    if method == "oauth2_client_credentials":
        token, secret = await _oauth2_token(config, env, egress, cache)
        return SourceAuth(Credentials(headers=_bearer(token)), (token, secret))
    return SourceAuth(Credentials(), ())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _basic_header(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {pair}"}


def _basic(config: HTTPConfig, env: EnvLookup) -> SourceAuth:
    user = config.username or need(env, config.username_env, "username_env")
    password = need(env, config.password_env, "password_env")
    header = _basic_header(user, password)
    pair = header["Authorization"][6:]
    note_derived(env, config.password_env or "", pair)  # an echo of the header is the password
    return SourceAuth(Credentials(headers=header), (password, pair))


def token_key(config: HTTPConfig, client_id: str, secret: str) -> TokenKey:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return (config.token_url or "", client_id, config.scope or "", digest)


async def _oauth2_token(
    config: HTTPConfig, env: EnvLookup, egress: Egress, cache: TokenCache
) -> tuple[str, str]:
    client_id = config.client_id or need(env, config.client_id_env, "client_id_env")
    secret = need(env, config.client_secret_env, "client_secret_env")
    key = token_key(config, client_id, secret)
    token = cache.get(key)
    if token is None:
        token, lifetime = await fetch_token(config, client_id, secret, egress)
        cache.put(key, token, lifetime)
    name = config.client_secret_env or ""
    note_derived(env, name, token)
    note_derived(env, name, _basic_header(client_id, secret)["Authorization"][6:])
    return token, secret


async def fetch_token(
    config: HTTPConfig, client_id: str, secret: str, egress: Egress
) -> tuple[str, float]:
    """POST grant_type=client_credentials to token_url (client authenticated by HTTP Basic)."""
    form = {"grant_type": "client_credentials"} | ({"scope": config.scope} if config.scope else {})
    request = OutboundRequest(
        method="POST",
        url=config.token_url or "",
        form=form,
        headers={"Accept": "application/json"},
        credentials=Credentials(headers=_basic_header(client_id, secret)),
        timeout=config.timeout or 30.0,
        follow_redirects=False,  # a token endpoint that redirects would move the secret along
    )
    response = await egress.send(request)
    body = decode_body(response.content, response.headers)
    if response.status >= 400 or not isinstance(body, dict):
        raise _token_error(response.status, body)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise ProviderError("The OAuth2 token endpoint answered without an access_token.")
    return token, _lifetime(body.get("expires_in"))


def _lifetime(value: object) -> float:
    if isinstance(value, int | float) and value > 0:
        return float(value)
    if isinstance(value, str) and value.isdigit():
        return float(value)
    return DEFAULT_TOKEN_LIFETIME


def _token_error(status: int, body: object) -> ProviderError:
    detail = ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = f": {body['error']}"
    return ProviderError(
        f"The OAuth2 token endpoint answered HTTP {status}{detail}; check the source's "
        "client_id, client_secret_env and scope.",
        status=status,
        retryable=status == 429 or status >= 500,
    )
