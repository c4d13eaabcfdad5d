"""API-key authentication and role permissions for every `/api/v1` route.

Keys come in `X-API-Key: <key>` or `Authorization: Api-Key <key>`. A missing, wrong, expired or
revoked key is a 401 with `WWW-Authenticate`; a key whose role may not do what it asks is a 403.

A staff user signed in to the admin may call the API with that session instead, as the tenant
they act for and with that membership's role (tenants/staff.py); writes then need the CSRF
token, as any form of the admin does. A key, when one is sent, always wins over the session.
"""

import re
from dataclasses import dataclass
from typing import Any, cast

import structlog
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from agentflow_site.converters import KEY_PREFIX
from tenants import staff
from tenants.models import ApiKey, Role, Tenant
from tenants.selectors import api_key_with_tenant
from tenants.services import audit_record

AUTH_SCHEME = "Api-Key"
HEADER = "HTTP_X_API_KEY"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, through one of its keys or a staff user's admin session.
    Stands in for `request.user`."""

    tenant: Tenant
    api_key: ApiKey | None = None
    username: str = ""  # a staff user's, when the call comes with their admin session
    session_role: str = ""

    is_authenticated = True
    is_anonymous = False

    @property
    def actor(self) -> str:
        """How audit records and `created_by` name the caller: `key:<prefix>` or
        `user:<name>` (as the admin's own writes are named)."""
        if self.api_key is not None:
            return f"key:{self.api_key.prefix}"
        return f"user:{self.username}"[:64]

    @property
    def role(self) -> str:
        return self.api_key.role if self.api_key is not None else self.session_role

    @property
    def throttle_ident(self) -> str:
        return self.api_key.prefix if self.api_key is not None else f"user:{self.username}"

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


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """A staff user's admin session, as the tenant they act for (tenants/staff.py).

    Steps aside (None) when a key is sent or there is no staff session, so the key's
    authentication answers; a staff session that cannot name its tenant is a 401 saying how."""

    def authenticate(self, request: Request) -> tuple[Principal, None] | None:
        if _key_from_request(request) is not None:
            return None
        user = getattr(request._request, "user", None)
        if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
            return None
        self.enforce_csrf(request)  # a 403 for a write without the admin's CSRF token
        slug = request.META.get(staff.TENANT_HEADER, "").strip() or None
        try:
            membership = staff.acting_membership(user, slug)
        except staff.NoTenant as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        username = cast(str, user.get_username())
        structlog.contextvars.bind_contextvars(
            tenant=membership.tenant.slug, user=username, role=membership.role
        )
        principal = Principal(
            tenant=membership.tenant, username=username, session_role=membership.role
        )
        return principal, None

    def authenticate_header(self, request: Request) -> str:
        return f'{AUTH_SCHEME} realm="api"'  # a 401 stays a 401 (DRF makes it 403 without)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, ApiKey]:
        raw = _key_from_request(request)
        if raw is None:
            raise exceptions.NotAuthenticated(
                "Send your API key in the X-API-Key header (or 'Authorization: Api-Key <key>'),"
                " or sign in to the admin as a staff user who acts for a tenant."
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
        held = "your key has" if principal.api_key is not None else "your membership has"
        self.message = f"This needs the '{needed}' role; {held} '{principal.role}'."
        return False
