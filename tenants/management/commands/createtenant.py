from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import TenantError, tenant_create


class Command(BaseCommand):
    help = "Create a tenant. Prints its slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="short stable name, e.g. acme")
        parser.add_argument("--name", default="", help="display name")
        parser.add_argument(
            "--allow-env",
            action="append",
            default=[],
            metavar="GRANT",
            help=(
                "an environment variable (or PREFIX_*) this tenant's sources may name, bound to "
                "where it may go: NAME@openai, NAME@http:api.example.com; repeat"
            ),
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            tenant = tenant_create(
                slug=opts["slug"], name=opts["name"], allowed_env=opts["allow_env"]
            )
        except TenantError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(tenant.slug)
