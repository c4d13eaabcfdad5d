import sqlite3
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agentflow_site.runtime_config import tenant_sqlite_dir
from tenants.models import Tenant

PRODUCTS = [
    ("Espresso machine", 249.0, 12),
    ("Grinder", 119.0, 0),
    ("Milk jug", 14.5, 48),
    ("Tamper", 22.0, 30),
]


def write_catalogue(path: Path) -> None:
    """(Re)create the demo catalogue the offline example reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as conn:
        conn.execute("CREATE TABLE products (name TEXT PRIMARY KEY, price REAL, stock INTEGER)")
        conn.executemany("INSERT INTO products VALUES (?, ?, ?)", PRODUCTS)
    conn.close()
    tmp.replace(path)


class Command(BaseCommand):
    help = (
        "Write demo.sqlite3 (a small product catalogue) in a tenant's own sqlite directory, "
        "AGENTFLOW_SQLITE_ROOT/t<tenant id>/."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default="demo", help="the tenant's slug")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {opts['tenant']!r}; run bootstrap_demo first.")
        path = tenant_sqlite_dir(tenant.pk) / "demo.sqlite3"
        write_catalogue(path)
        self.stdout.write(str(path))
