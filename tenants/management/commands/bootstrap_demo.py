import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
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


def credentials_file() -> Path:
    """Where the demo key and admin password are kept between starts (mode 600)."""
    return Path(settings.DATA_DIR) / "demo-credentials.json"


def _kept() -> dict[str, str]:
    try:
        kept = json.loads(credentials_file().read_text())
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def _keep(values: dict[str, str]) -> None:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out)
    path.chmod(0o600)  # an older file keeps its mode through O_CREAT


def _still_valid(raw: str, tenant: Tenant) -> bool:
    prefix = raw.partition(".")[0]
    found = ApiKey.objects.filter(prefix=prefix, tenant=tenant, revoked=False).first()
    return found is not None and found.is_valid(raw) and not found.has_expired


class Command(BaseCommand):
    help = (
        "Make the demo tenant, its admin API key and an 'admin' superuser for /admin/, kept "
        "across starts in <AGENTFLOW_DATA_DIR>/demo-credentials.json (mode 600); --new-key "
        "replaces them (earlier demo keys are revoked). For local use only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--new-key", action="store_true", help="a new key and password, even if kept ones work"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first() or tenant_create(
            slug=opts["tenant"], name="Demo tenant", allowed_env=DEMO_ENV_GRANTS
        )
        write_catalogue(tenant_sqlite_dir(tenant.pk) / "demo.sqlite3")  # its own sqlite directory
        kept = {} if opts["new_key"] else _kept()
        key = kept.get("key", "")
        if not (key and _still_valid(key, tenant)):
            for old in ApiKey.objects.for_tenant(tenant).filter(name=DEMO_KEY_NAME, revoked=False):
                api_key_revoke(api_key=old)
            _, key = api_key_create(tenant=tenant, role=Role.ADMIN, name=DEMO_KEY_NAME)
            made = "new"
        else:
            made = "kept from the last start"
        password = kept.get("admin_password", "")
        user_model = get_user_model()
        user = user_model.objects.filter(username="admin").first()
        if user is None:
            password = password or secrets.token_urlsafe(12)
            user = user_model.objects.create_superuser("admin", "admin@localhost", password)
        elif not (password and user.check_password(password)):
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
        _keep({"key": key, "admin_password": password})
        base = opts["base_url"]
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"  Demo tenant:   {tenant.slug}",
                    f"  Admin API key: {key}   ({made}; NEW_KEY=1 make run for another)",
                    f"  Try it:        curl -H 'X-API-Key: {key}' {base}/api/v1/me",
                    f"  API docs:      {base}/api/docs/",
                    f"  Django admin:  {base}/admin/   user 'admin', password '{password}'",
                    "",
                ]
            )
        )
