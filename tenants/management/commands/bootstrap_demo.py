import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from agentflow_site.runtime_config import tenant_sqlite_dir
from tenants.management.commands.demo_catalogue import write_catalogue
from tenants.models import ApiKey, Role, Tenant
from tenants.services import api_key_create, api_key_revoke, tenant_create

DEMO_KEY_NAME = "demo admin (make run)"
# The variables the bundled examples name, each bound to where the examples send it (so that no
# workflow can send the keys anywhere else); a real tenant is granted its own (createtenant
# --allow-env, the admin, or AGENTFLOW_ALLOWED_ENV for every tenant).
DEMO_ENV_GRANTS = [
    "OPENAI_API_KEY@openai|openai_image",
    "ANTHROPIC_API_KEY@anthropic",
    "SHOP_DATABASE_URL@postgres",
    "CRM_TOKEN@http:crm.example.com",
]


class Command(BaseCommand):
    help = (
        "Make the demo tenant and a fresh admin API key (earlier demo keys are revoked), and "
        "an 'admin' superuser for /admin/ with a new password. For local use only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first() or tenant_create(
            slug=opts["tenant"], name="Demo tenant", allowed_env=DEMO_ENV_GRANTS
        )
        write_catalogue(tenant_sqlite_dir(tenant.pk) / "demo.sqlite3")  # its own sqlite directory
        for old in ApiKey.objects.for_tenant(tenant).filter(name=DEMO_KEY_NAME, revoked=False):
            api_key_revoke(api_key=old)
        _, key = api_key_create(tenant=tenant, role=Role.ADMIN, name=DEMO_KEY_NAME)
        password = secrets.token_urlsafe(12)
        user_model = get_user_model()
        user = user_model.objects.filter(username="admin").first()
        if user is None:
            user = user_model.objects.create_superuser("admin", "admin@localhost", password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        base = opts["base_url"]
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"  Demo tenant:   {tenant.slug}",
                    f"  Admin API key: {key}   (shown once; a new one each start)",
                    f"  Try it:        curl -H 'X-API-Key: {key}' {base}/api/v1/me",
                    f"  API docs:      {base}/api/docs/",
                    f"  Django admin:  {base}/admin/   user 'admin', password '{password}'",
                    "",
                ]
            )
        )
