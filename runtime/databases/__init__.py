"""Database adapters for the db node, one per source kind: `DATABASES[kind](config, env)`.

`sqlite` needs the operator's SQLite root, so it is added by `database_factories(root)`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.databases.base import Database
from runtime.databases.mysql import mysql_factory
from runtime.databases.postgres import postgres_factory
from runtime.databases.sqlite import sqlite_factory
from runtime.providers.base import EnvLookup

DatabaseFactory = Callable[[Any, EnvLookup], Database]

DATABASES: dict[str, DatabaseFactory] = {
    "postgres": postgres_factory,
    "mysql": mysql_factory,
}


def database_factories(sqlite_root: Path) -> dict[str, DatabaseFactory]:
    """Every database kind, sqlite files read from under `sqlite_root`."""
    return {**DATABASES, "sqlite": sqlite_factory(sqlite_root)}
