"""Database adapters for the db node, one per source kind: `DATABASES[kind](config, env)`.

`database_factories(root, tenant=…, policy=…)` gives every kind bound to what the operator
decided: the functions and roles allowed (`SQLPolicy`), and the one directory of SQLite files
the run's tenant may read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from runtime.databases.base import Database
from runtime.databases.functions import DEFAULT_POLICY, SQLPolicy
from runtime.databases.mysql import mysql_factory
from runtime.databases.postgres import postgres_factory
from runtime.databases.sqlite import sqlite_factory
from runtime.providers.base import EnvLookup

DatabaseFactory = Callable[[Any, EnvLookup], Database]

DATABASES: dict[str, DatabaseFactory] = {
    "postgres": postgres_factory,
    "mysql": mysql_factory,
}


def database_factories(
    sqlite_root: Path, *, tenant: str = "", policy: SQLPolicy = DEFAULT_POLICY
) -> dict[str, DatabaseFactory]:
    """Every database kind under the operator's `policy`; sqlite files are read from
    `sqlite_root/<tenant>/` only (none at all without a tenant)."""
    return {
        "postgres": partial(postgres_factory, policy=policy),
        "mysql": partial(mysql_factory, policy=policy),
        "sqlite": sqlite_factory(sqlite_root, tenant),
    }
