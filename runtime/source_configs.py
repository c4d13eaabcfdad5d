"""What each source kind's `config` accepts (SPEC §1 "Sources"), listed in `SOURCE_CONFIGS`.

Credentials are never in a config: only the *name* of an environment variable (`*_env` fields).
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from runtime.egress.headers import CREDENTIAL_NAME, RESERVED_HEADERS, header_problem
from runtime.egress.trust import entry_problem
from runtime.strict import (
    EnvName,
    HttpUrlStr,
    ImageQuality,
    ImageSize,
    ImageStyle,
    NonEmpty,
    StrictModel,
    image_size_problem,
)

# Config keys that hold a credential when they are not a declared field (e.g. `api_key`, but not
# the declared `max_tokens`): reported as `literal_secret`, pointing to the `*_env` spelling.
CREDENTIAL_KEY = re.compile(
    r"(?:^|_)(?:api_?key|apikey|key|password|passwd|pwd|secret|token|access_token|refresh_token"
    r"|connection_string|conn_str|dsn|private_key|credentials?)$",
    re.IGNORECASE,
)
# Header names in an http source's `headers` that carry credentials (any name with key, token,
# auth, secret, password, session, cookie, signature or credential in it): use `auth_method`.
CREDENTIAL_HEADER = re.compile(rf".*(?:{CREDENTIAL_NAME.pattern})", re.IGNORECASE)


class SourceConfig(StrictModel):
    """Base of every source kind's config."""


class _Sampling(SourceConfig):
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    timeout: float | None = Field(default=None, gt=0, le=3600, description="Seconds per request.")
    max_retries: int | None = Field(default=None, ge=0, le=10)


class OpenAIConfig(_Sampling):
    model_name: NonEmpty
    api_key_env: EnvName | None = Field(
        default=None,
        description="Required by the SDK even for local servers (any value works there).",
    )
    base_url: HttpUrlStr | None = Field(default=None, description="Any OpenAI-compatible server.")
    organization: str | None = None


class AzureOpenAIConfig(_Sampling):
    deployment: NonEmpty
    endpoint: HttpUrlStr
    api_version: NonEmpty
    api_key_env: EnvName | None = None


class AnthropicConfig(SourceConfig):
    model_name: NonEmpty
    api_key_env: EnvName | None = None
    base_url: HttpUrlStr | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=1)


class GoogleConfig(SourceConfig):
    model_name: NonEmpty = Field(description="A Gemini model.")
    api_key_env: EnvName | None = None
    base_url: HttpUrlStr | None = None


class OpenAIImageConfig(SourceConfig):
    model_name: NonEmpty = Field(
        description="gpt-image-1 and successors; dall-e-3/dall-e-2 where offered."
    )
    api_key_env: EnvName | None = None
    base_url: HttpUrlStr | None = None
    size: ImageSize | None = None
    quality: ImageQuality | None = None
    style: ImageStyle | None = None

    @model_validator(mode="after")
    def _size_fits_model(self) -> Self:
        problem = image_size_problem(self.model_name, self.size)
        if problem:
            raise ValueError(problem)
        return self


# The operator caps what a db source may ask for, per process (runtime/databases/limits.py).
_POOL_SIZE = (
    "Connections kept open between queries (opened when first needed); with max_overflow, at "
    "most the operator's AGENTFLOW_DB_POOL_MAX_PER_SOURCE."
)


class PostgresConfig(SourceConfig):
    connection_string_env: EnvName
    pool_size: int = Field(default=5, ge=1, le=100, description=_POOL_SIZE)
    max_overflow: int = Field(
        default=0, ge=0, le=100, description="Connections opened past pool_size under load."
    )
    pool_timeout: float = Field(
        default=30,
        gt=0,
        le=600,
        description="Seconds a query waits for a connection; at most AGENTFLOW_DB_POOL_TIMEOUT.",
    )
    statement_timeout_ms: int = Field(default=5000, gt=0, le=3_600_000)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        None
    )


class MySQLConfig(SourceConfig):
    connection_string_env: EnvName
    pool_size: int = Field(default=5, ge=1, le=100, description=_POOL_SIZE)
    statement_timeout_ms: int = Field(default=5000, gt=0, le=3_600_000)


class SQLiteConfig(SourceConfig):
    path: NonEmpty = Field(description="Opened read-only; for local use and demos.")


AuthMethod = Literal["none", "api_key", "bearer", "basic", "oauth2_client_credentials"]
# Each auth method's fields; a tuple of alternatives means "one of these".
HTTP_AUTH_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "none": (),
    "api_key": (("api_key_env",),),
    "bearer": (("token_env",),),
    "basic": (("username", "username_env"), ("password_env",)),
    "oauth2_client_credentials": (
        ("token_url",),
        ("client_id", "client_id_env"),
        ("client_secret_env",),
    ),
}


class HTTPConfig(SourceConfig):
    base_url: HttpUrlStr
    auth_method: AuthMethod = "none"
    api_key_env: EnvName | None = None
    api_key_header: NonEmpty = "X-API-Key"
    api_key_query: NonEmpty | None = Field(
        default=None, description="Send the key as this query parameter instead of a header."
    )
    token_env: EnvName | None = None
    username: str | None = None
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    token_url: HttpUrlStr | None = None
    client_id: str | None = None
    client_id_env: EnvName | None = None
    client_secret_env: EnvName | None = None
    scope: str | None = None
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every request to the source (a node's own headers win); never "
        "credentials: set auth_method.",
    )
    timeout: float | None = Field(default=None, gt=0, le=300)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    allowed_hosts: list[NonEmpty] = Field(
        default_factory=list,
        description="Narrows the hosts the operator trusts to these (`host`, `host:port`, an IP "
        "or a CIDR range); it never opens a host the operator does not trust.",
    )

    @field_validator("headers")
    @classmethod
    def _headers_sendable(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"the header {name!r} is set by AgentFlow itself; remove it")
            problem = header_problem(name, value)
            if problem:
                raise ValueError(problem)
        return headers

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_readable(cls, hosts: list[str]) -> list[str]:
        for entry in hosts:
            problem = entry_problem(entry)
            if problem:
                raise ValueError(problem)
        return hosts

    @model_validator(mode="after")
    def _auth_fields_present(self) -> Self:
        for alternatives in HTTP_AUTH_FIELDS[self.auth_method]:
            if all(getattr(self, name) is None for name in alternatives):
                names = " or ".join(alternatives)
                raise ValueError(f"auth_method {self.auth_method!r} needs {names}")
        return self


SOURCE_CONFIGS: dict[str, type[SourceConfig]] = {
    "openai": OpenAIConfig,
    "azure_openai": AzureOpenAIConfig,
    "anthropic": AnthropicConfig,
    "google": GoogleConfig,
    "openai_image": OpenAIImageConfig,
    "postgres": PostgresConfig,
    "mysql": MySQLConfig,
    "sqlite": SQLiteConfig,
    "http": HTTPConfig,
}
