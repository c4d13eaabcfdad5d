import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tenants.models import Role, Tenant
from tenants.services import TenantError, api_key_create

DURATION_RE = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str) -> datetime:
    """`30d`, `12h`, `2w`, `90m`, or an ISO 8601 date/time (UTC when no offset is given)."""
    match = DURATION_RE.match(text.strip())
    if match:
        return timezone.now() + timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(
            f"--expires {text!r} is neither a duration (30d, 12h, 2w, 90m) nor an ISO date."
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Create an API key for a tenant. Prints the key alone (shown once), for scripts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument("--expires", help="30d, 12h, 2w, 90m or an ISO 8601 date")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {opts['tenant']!r}. Create it with createtenant.")
        expires = parse_expiry(opts["expires"]) if opts["expires"] else None
        try:
            _, key = api_key_create(
                tenant=tenant, role=opts["role"], name=opts["name"], expires_at=expires
            )
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(key)
