"""API-key authentication and role permissions for every `/api/v1` route.

Keys come in `X-API-Key: <key>` or `Authorization: Api-Key <key>`. A missing, wrong, expired or
revoked key is a 401 with `WWW-Authenticate`; a key whose role may not do what it asks is a 403.
"""

import re
from dataclasses import dataclass
from typing import Any

import structlog
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from agentflow_site.converters import KEY_PREFIX
from tenants.models import ApiKey, Role, Tenant
from tenants.selectors import api_key_with_tenant
from tenants.services import audit_record

AUTH_SCHEME = "Api-Key"
HEADER = "HTTP_X_API_KEY"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, through one of its keys. Stands in for `request.user`."""

    tenant: Tenant
    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def actor(self) -> str:
        """How audit records and `created_by` name the caller: `key:<prefix>`."""
        return f"key:{self.api_key.prefix}"

    @property
    def role(self) -> str:
        return self.api_key.role

    def has_role(self, needed: str) -> bool:
        return Role.rank(self.role) >= Role.rank(needed)


def principal_of(request: Request) -> Principal:
    """The caller of an authenticated API view."""
    principal = request.user
    if not isinstance(principal, Principal):
        raise exceptions.NotAuthenticated()
    return principal


def _key_from_request(request: Request) -> str | None:
    key = request.META.get(HEADER, "").strip()
    if key:
        return str(key)
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == AUTH_SCHEME.lower() and value.strip():
        return str(value.strip())
    return None


def _refusal(api_key: ApiKey, raw: str) -> str | None:
    """Why a key that exists may not be used, or None when it may."""
    if not api_key.is_valid(raw):
        return "This API key is not valid."
    if api_key.revoked:
        return "This API key has been revoked."
    if api_key.expiry_date is not None and api_key.expiry_date <= timezone.now():
        return f"This API key expired at {api_key.expiry_date.isoformat()}."
    if not api_key.tenant.is_active:
        return "This API key's tenant is disabled."
    return None


def _verified_key(raw: str, request: Request) -> ApiKey:
    prefix, dot, _secret = raw.partition(".")
    # Only a prefix that could exist reaches the database (a NUL in a header would be a 500).
    well_formed = bool(dot) and re.fullmatch(KEY_PREFIX, prefix) is not None
    api_key = api_key_with_tenant(prefix) if well_formed else None
    if api_key is None:
        raise exceptions.AuthenticationFailed("This API key is not valid.")
    refusal = _refusal(api_key, raw)
    # Only attempts on one of a tenant's real keys reach its audit log (garbage is only logged),
    # and at most one a minute per key, so a flood of bad secrets cannot fill the log.
    if refusal is not None and cache.add(f"auth-failed:{prefix}", 1, timeout=60):
        audit_record(
            tenant=api_key.tenant,
            actor=f"key:{prefix}",
            action="auth.failed",
            target_type="key",
            target_id=prefix,
            details={"reason": refusal},
            ip=request.META.get("REMOTE_ADDR"),
        )
    if refusal is not None:
        raise exceptions.AuthenticationFailed(refusal)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, ApiKey]:
        raw = _key_from_request(request)
        if raw is None:
            raise exceptions.NotAuthenticated(
                "Send your API key in the X-API-Key header (or 'Authorization: Api-Key <key>')."
            )
        api_key = _verified_key(raw, request)
        structlog.contextvars.bind_contextvars(
            tenant=api_key.tenant.slug, key_prefix=api_key.prefix, role=api_key.role
        )
        return Principal(tenant=api_key.tenant, api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{AUTH_SCHEME} realm="api"'


class HasRole(permissions.BasePermission):
    """Reads need `viewer`; writes need the view's `write_role` (default `developer`).

    A view narrows this with `read_role` / `write_role` attributes (keys: `admin`;
    execute: `executor`).
    """

    message = "Your key's role may not do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            return False
        if request.method in permissions.SAFE_METHODS:
            needed = getattr(view, "read_role", Role.VIEWER)
        else:
            needed = getattr(view, "write_role", Role.DEVELOPER)
        if principal.has_role(needed):
            return True
        self.message = f"This needs the '{needed}' role; your key has '{principal.role}'."
        return False
