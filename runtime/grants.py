"""Which environment variables a tenant's sources may name, and where each value may be sent.

The operator grants variables (`AGENTFLOW_ALLOWED_ENV` for every tenant, a tenant's own
`allowed_env`), each bound to the places its value may go:

    OPENAI_API_KEY                        a plain name: any source whose destination the operator
                                          fixes (see below); never an http source
    OPENAI_API_KEY@openai|openai_image    sources of those kinds at their fixed destination
    AGENTFLOW_T_ACME_*@http:api.acme.com  http sources at that host (`*.acme.com`: its subdomains)
    SHOP_DSN@postgres                     postgres sources (a DSN names its own host)
    {"env": "GW_KEY", "to": ["openai:gw.example.com"]}       the same, as JSON

A destination is *fixed* when the tenant does not choose it: a provider kind's public API or the
operator's `AGENTFLOW_PROVIDER_BASE_URLS` for it (a spec's own `base_url` is fixed only when it
has that same origin), and every database (its host is inside the credential). An http source,
an Azure `endpoint` or any other URL of the spec's choosing takes a `kind:host` binding.

Both the validator and the run (when the adapter reads the value) ask `Grants.refusal`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runtime.providers._common import ANTHROPIC_URL, GEMINI_URL, OPENAI_URL

DEFAULT_URLS = {
    "openai": OPENAI_URL,
    "openai_image": OPENAI_URL,
    "anthropic": ANTHROPIC_URL,
    "google": GEMINI_URL,
}
"""Where a provider kind goes when neither the spec nor the operator names a URL."""
DATABASE_KINDS = frozenset({"postgres", "mysql"})
URL_KINDS = frozenset({"azure_openai", "http"})
"""Kinds whose destination is always the spec's choice: they take `kind:host` bindings."""
CREDENTIAL_KINDS = frozenset(DEFAULT_URLS) | DATABASE_KINDS | URL_KINDS
_HTTP_TOKEN_FIELDS = frozenset({"client_id_env", "client_secret_env"})
"""An http source's fields whose values go to its `token_url`, not its `base_url`."""
_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\*?$|^\*$")
_HOST = re.compile(r"^(?:\*\.)?[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$|^\[?[0-9a-f:.]+\]?$")


class GrantError(ValueError):
    """A grant that does not parse; the message names it and says how to write it."""


@dataclass(frozen=True, slots=True)
class Target:
    """One place a granted value may go: sources of `kind`, at `host` or at their fixed
    destination (host None)."""

    kind: str
    host: str | None = None

    def admits(self, use: CredentialUse) -> bool:
        if use.kind != self.kind:
            return False
        if self.host is None:
            return use.fixed
        return use.host is not None and host_matches(self.host, use.host)

    def __str__(self) -> str:
        return f"{self.kind}:{self.host}" if self.host else self.kind


@dataclass(frozen=True, slots=True)
class Grant:
    pattern: str
    """An exact name, or a prefix ending in `*`."""
    targets: tuple[Target, ...] | None = None
    """None: a plain name, sent only where the operator fixes the destination."""

    def names(self, name: str) -> bool:
        if self.pattern.endswith("*"):
            return len(self.pattern) > 1 and name.startswith(self.pattern[:-1])
        return name == self.pattern

    def admits(self, use: CredentialUse) -> bool:
        if self.targets is None:
            return use.fixed
        return any(target.admits(use) for target in self.targets)

    def describe(self) -> str:
        if self.targets is None:
            return "sources whose destination the operator fixes (a provider's own API, a database)"
        return " or ".join(_target_text(t) for t in self.targets)


def _target_text(target: Target) -> str:
    if target.host is None:
        where = "" if target.kind in DATABASE_KINDS else " at their provider's own address"
        return f"{target.kind} sources{where}"
    return f"{target.kind} sources at {target.host}"


@dataclass(frozen=True, slots=True)
class CredentialUse:
    """One variable a source names, and where the source sends its value."""

    name: str
    field: str
    kind: str
    host: str | None
    """The host the value is sent to; None for a database (its host is in the value)."""
    fixed: bool
    """The operator, not the spec, decides this destination."""

    def where(self) -> str:
        return f"{self.host} ({_a(self.kind)} source)" if self.host else f"a {self.kind} database"

    def binding(self) -> str:
        """The grant that would allow this use, e.g. `CRM_TOKEN@http:crm.example.com`."""
        target = f"{self.kind}:{self.host}" if self.host and not self.fixed else self.kind
        return f"{self.name}@{target}"


@dataclass(frozen=True)
class Grants:
    """A tenant's grants (the operator-wide ones included) and the operator's provider URLs."""

    grants: tuple[Grant, ...] = ()
    base_urls: Mapping[str, str] | None = None
    """Source kind → the operator's URL for sources naming none (AGENTFLOW_PROVIDER_BASE_URLS)."""

    @classmethod
    def parse(cls, entries: Iterable[Any], base_urls: Mapping[str, str] | None = None) -> Grants:
        """Raises GrantError for the first entry that does not parse."""
        return cls(tuple(parse_grant(entry) for entry in entries), base_urls)

    def names(self, name: str) -> bool:
        """Whether any grant names the variable (wherever it may go)."""
        return any(grant.names(name) for grant in self.grants)

    def refusal(self, use: CredentialUse) -> str | None:
        """Why the use is not granted, or None when a grant binds the variable to it."""
        named = [grant for grant in self.grants if grant.names(use.name)]
        if any(grant.admits(use) for grant in named):
            return None
        if not named:
            return f"'{use.name}' is not granted to your account"
        bound = " or ".join(dict.fromkeys(grant.describe() for grant in named))
        return (
            f"the operator granted '{use.name}' for {bound} only, and {use.field} would send it "
            f"to {use.where()}"
        )

    def uses(self, kind: str, config: Mapping[str, Any]) -> list[CredentialUse]:
        """Every variable the source config names (`*_env` fields), with its destination."""
        found = []
        for field_name, value in config.items():
            if field_name.endswith("_env") and isinstance(value, str) and value:
                host, fixed = self._destination(kind, config, field_name)
                found.append(CredentialUse(value, field_name, kind, host, fixed))
        return found

    def values(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The value of every variable some grant names (to be kept out of a run's records)."""
        return {name: value for name, value in environ.items() if value and self.names(name)}

    def _destination(
        self, kind: str, config: Mapping[str, Any], field_name: str
    ) -> tuple[str | None, bool]:
        if kind in DATABASE_KINDS:
            return None, True
        if kind == "http":
            url = config.get("token_url" if field_name in _HTTP_TOKEN_FIELDS else "base_url")
            return _host(url), False
        url = config.get("endpoint" if kind == "azure_openai" else "base_url")
        fixed_url = (self.base_urls or {}).get(kind) or DEFAULT_URLS.get(kind)
        if not url:
            return _host(fixed_url), fixed_url is not None
        origin = _origin(url)
        return _host(url), origin is not None and origin == _origin(fixed_url or "")


def grant_entries(text: str) -> list[Any]:
    """The grants in an environment variable: comma-separated, or a JSON list (strings and
    `{"env", "to"}` objects). Each is checked; the entries are returned as written.

    Raises:
        GrantError: the text or one of its entries does not parse.
    """
    text = text.strip()
    if text.startswith("["):
        try:
            entries = json.loads(text)
        except ValueError as exc:
            raise GrantError(f"The JSON list of grants does not parse: {exc}.") from None
    else:
        entries = [part.strip() for part in text.split(",") if part.strip()]
    for entry in entries:
        parse_grant(entry)
    return list(entries)


def parse_grant(entry: Any) -> Grant:
    """One grant: `NAME`, `PREFIX_*`, `NAME@kind|kind:host…`, or `{"env": …, "to": […]}`.

    Raises:
        GrantError: the entry does not parse, or binds a kind in a way that cannot be kept.
    """
    if isinstance(entry, Mapping):
        return _grant_from_json(entry)
    if not isinstance(entry, str):
        raise GrantError(f"A grant is a string or an object, not {entry!r}.")
    pattern, at, targets = entry.strip().partition("@")
    if not at:
        return Grant(_pattern(pattern, entry))
    return Grant(_pattern(pattern, entry), _targets(targets.split("|"), entry))


def _grant_from_json(entry: Mapping[str, Any]) -> Grant:
    name, to = entry.get("env"), entry.get("to")
    unknown = set(entry) - {"env", "to"}
    if not isinstance(name, str) or unknown:
        raise GrantError(f'A grant object is {{"env": NAME, "to": [TARGET, …]}}: {dict(entry)!r}.')
    if to is None:
        return Grant(_pattern(name, name))
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not all(isinstance(t, str) for t in to):
        raise GrantError(f"The grant of {name!r}: 'to' is a list of targets such as 'openai'.")
    return Grant(_pattern(name, name), _targets(to, name))


def _pattern(pattern: str, entry: str) -> str:
    if not _PATTERN.match(pattern) or pattern == "*":
        raise GrantError(
            f"The grant {entry!r} must start with a variable name or a PREFIX_* (a lone '*' "
            "would grant every variable)."
        )
    return pattern


def _targets(texts: list[str], entry: str) -> tuple[Target, ...]:
    if not texts or not all(t.strip() for t in texts):
        raise GrantError(f"The grant {entry!r} names no target after '@' (e.g. NAME@openai).")
    return tuple(_target(text.strip(), entry) for text in texts)


def _target(text: str, entry: str) -> Target:
    kind, colon, host = text.partition(":")
    kind = kind.strip().lower()
    if kind not in CREDENTIAL_KINDS:
        known = ", ".join(sorted(CREDENTIAL_KINDS))
        raise GrantError(f"The grant {entry!r} names the kind {kind!r}; kinds: {known}.")
    if not colon:
        if kind in URL_KINDS:
            raise GrantError(
                f"The grant {entry!r} binds {kind} without a host, but {_a(kind)} source sends "
                f"its credentials to a URL of the spec's choosing; bind it to one: "
                f"{kind}:api.example.com."
            )
        return Target(kind)
    if kind in DATABASE_KINDS:
        raise GrantError(
            f"The grant {entry!r} gives {kind} a host; a connection string names its own host, "
            f"so bind it to the kind alone: {kind}."
        )
    host = host.strip().lower()
    if not _HOST.match(host):
        raise GrantError(
            f"The grant {entry!r} names the host {host!r}; write a host name or address "
            "(api.example.com, *.example.com), with no scheme, port or path."
        )
    return Target(kind, host.strip("[]"))


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeioh" else f"a {kind}"


def host_matches(pattern: str, host: str) -> bool:
    """`api.example.com` matches itself; `*.example.com` matches every subdomain of it."""
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _host(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _origin(url: Any) -> tuple[str, str, int | None] | None:
    if not isinstance(url, str):  # a config's URL that is not text: the config check says so
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    return (parts.scheme, parts.hostname, port) if parts.hostname else None
