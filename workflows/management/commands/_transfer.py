"""What the export_workflow and import_workflow commands share (not a command: `_` names are
skipped by Django's command discovery)."""

import getpass

from django.core.management.base import CommandError

from tenants.models import Tenant


def tenant_named(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(
            f"There is no tenant '{slug}': see `manage.py createtenant`, or the tenants in the "
            "admin."
        )
    return tenant


def cli_actor() -> str:
    """How audit records and `created_by` name the operator: `cli:<login>`."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name, no passwd entry (a bare container)
        return "cli"
    return f"cli:{user}"[:64]
