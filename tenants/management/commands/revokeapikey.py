from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import ApiKey
from tenants.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key for good, named by its prefix (the part before the dot) or whole."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="the key's prefix, or the whole key")

    def handle(self, *args: Any, **opts: Any) -> None:
        prefix = opts["key"].partition(".")[0]
        api_key = ApiKey.objects.filter(prefix=prefix).select_related("tenant").first()
        if api_key is None:
            raise CommandError(f"No API key with prefix {prefix!r}.")
        api_key_revoke(api_key=api_key)
        self.stdout.write(f"revoked {api_key.prefix} ({api_key.tenant.slug}, {api_key.role})")
