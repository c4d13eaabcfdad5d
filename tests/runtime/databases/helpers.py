"""Shared by the database adapter tests: real servers on 127.0.0.1, unique table names."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from typing import Any

import pytest

from runtime.databases.base import Query
from runtime.databases.functions import SQLPolicy
from runtime.databases.pgpool import close_pools
from tests.conftest import IN_CI

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"
ADMIN_OK = SQLPolicy(
    pg_functions=frozenset({"pg_sleep", "pg_backend_pid"}),
    mysql_functions=frozenset({"sleep", "connection_id"}),
    allow_privileged_roles=True,
)
"""What these tests' operator allows: the test servers' admin users are privileged, and the
tests sleep and ask for their session's id. They show the other layers at work; test_gates.py
shows such a role, and those functions, refused by default."""


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def unavailable(service: str, exc: Exception) -> None:
    """Under CI a missing service is a failure, never a skip."""
    message = f"{service} is not reachable on 127.0.0.1 ({exc})"
    if IN_CI:
        pytest.fail(f"CI=true but {message}.")
    pytest.skip(message)


def run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """Run in a fresh loop, as the worker does, closing that loop's pools after."""

    async def main() -> T:
        try:
            return await coroutine
        finally:
            await close_pools()

    return asyncio.run(main())


def query(sql: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Query:
    return Query(sql=sql, params=params or {}, max_rows=kwargs.pop("max_rows", 100), **kwargs)
