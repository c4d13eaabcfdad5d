import sqlite3
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

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
    help = "Write demo.sqlite3 (a small product catalogue) under AGENTFLOW_SQLITE_ROOT."

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(settings.AGENTFLOW_SQLITE_ROOT) / "demo.sqlite3"
        write_catalogue(path)
        self.stdout.write(str(path))
