"""MySQL/MariaDB connections for the db node: one `MySQLSource` per source config per event
loop, its connections in a process-wide `Pool` (runtime/databases/pool.py: lazy, capped,
shared by runs).

PyMySQL is synchronous: connections are opened and used in worker threads
(`asyncio.to_thread`); the pool only counts and hands them out. Sources are keyed by a hash of
the connection string, which is never logged or put in a message.

PyMySQL reads a row whole, however large, before the cursor sees it: `CappedConnection`
refuses a packet (a row) larger than the byte cap from its length header, before reading it.
"""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from runtime.databases.base import ConnectionFailed, DatabaseError, row_too_large
from runtime.databases.limits import db_limits
from runtime.databases.pool import Pool, PoolSettings, holder_for
from runtime.databases.roles import RoleFacts
from runtime.source_configs import MySQLConfig

SCHEMES = ("mysql", "mysql+pymysql", "mariadb")
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_PAD_S = 30
"""A socket read never waits longer than the source's statement timeout plus this."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    mariadb: bool
    version: str


class MySQLSource:
    def __init__(self, params: dict[str, Any], config: MySQLConfig) -> None:
        limits = db_limits()
        size = min(config.pool_size, limits.max_per_source)
        self.params = params
        self.server: ServerInfo | None = None
        self.facts: RoleFacts | None = None
        """What the user's grants allow beyond reading: read once, then kept."""
        self.pool: Pool[Any] = Pool(
            PoolSettings(
                "mysql",
                max_size=size,
                keep=size,
                timeout=limits.pool_timeout,
                asked=config.pool_size,
            ),
            open=self._open,
            close=_close,
        )

    def connect(self) -> Any:
        """A new connection (blocking; in a worker thread). Also used outside the pool, to
        KILL a runaway query."""
        import pymysql
        from pymysql.constants import CLIENT

        try:
            conn = capped_connection_class()(**self.params, client_flag=0, local_infile=False)
        except pymysql.err.MySQLError as exc:
            raise ConnectionFailed(
                f"Could not connect to the mysql source: {_reason(exc)}."
            ) from exc
        # One statement per call is a layer of the read-only guard: never let it be turned on.
        assert not conn.client_flag & CLIENT.MULTI_STATEMENTS
        if self.server is None:
            version = conn.get_server_info()
            self.server = ServerInfo(mariadb="mariadb" in version.lower(), version=version)
        return conn

    async def _open(self) -> Any:
        return await asyncio.to_thread(self.connect)


def source_for(dsn: str, env_name: str, config: MySQLConfig) -> MySQLSource:
    """The running loop's source for this connection string and settings, made on first use."""
    key = hashlib.sha256(f"mysql\0{dsn}\0{config.model_dump_json()}".encode()).hexdigest()

    def make() -> MySQLSource:
        params = parse_dsn(dsn, env_name)
        params["read_timeout"] = config.statement_timeout_ms / 1000 + READ_TIMEOUT_PAD_S
        return MySQLSource(params, config)

    return holder_for(key, make)


@cache
def capped_connection_class() -> type[Any]:
    """PyMySQL's Connection, refusing a packet larger than `packet_cap` before reading it."""
    import pymysql.connections

    class CappedConnection(pymysql.connections.Connection):  # type: ignore[misc]
        packet_cap: int | None = None
        """Set while a result is read; None otherwise."""
        _packet_bytes = 0

        def _read_packet(self, *args: Any, **kwargs: Any) -> Any:
            self._packet_bytes = 0
            return super()._read_packet(*args, **kwargs)

        def _read_bytes(self, num_bytes: int) -> Any:
            if self.packet_cap is not None:
                # A row over 16 MB comes as several packets: their sum is what is capped.
                self._packet_bytes += num_bytes
                if self._packet_bytes > self.packet_cap:
                    cap, self.packet_cap = self.packet_cap, None
                    abandon(self)  # the row is still on the wire
                    raise row_too_large(cap)
            return super()._read_bytes(num_bytes)

    return CappedConnection


def parse_dsn(dsn: str, env_name: str) -> dict[str, Any]:
    """`mysql://user:pass@host:port/db?charset=…&ssl_ca=…` as PyMySQL keyword arguments."""
    parts = urlsplit(dsn)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise DatabaseError(
            f"The variable {env_name} does not hold a mysql://user:password@host:port/database "
            "connection string."
        )
    params: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")) or None,
        "charset": "utf8mb4",
        "connect_timeout": CONNECT_TIMEOUT_S,
        "autocommit": True,  # transactions are explicit: START TRANSACTION READ ONLY … ROLLBACK
    }
    for name, values in parse_qs(parts.query).items():
        params.update(_option(name, values[-1], env_name))
    return params


def _option(name: str, value: str, env_name: str) -> dict[str, Any]:
    if name == "charset":
        return {"charset": value}
    if name in ("ssl_ca", "ssl_cert", "ssl_key"):
        return {name: value}
    if name in ("ssl", "ssl-mode", "ssl_mode"):
        required = value.lower() in ("1", "true", "required", "verify_ca", "verify_identity")
        return {"ssl": {"check_hostname": value.lower() == "verify_identity"}} if required else {}
    raise DatabaseError(
        f"The connection string in {env_name} has an option this adapter does not know: {name}. "
        "Known: charset, ssl, ssl_ca, ssl_cert, ssl_key."
    )


def abandon(conn: Any) -> None:
    """Close a connection in the middle of a result, without reading the rest of it."""
    _stop_reading(conn)
    with suppress(Exception):
        conn._force_close()


def _close(conn: Any) -> None:
    # It may come back in the middle of a result (an error while reading): not a byte more.
    _stop_reading(conn)
    close_quietly(conn)


def _stop_reading(conn: Any) -> None:
    # PyMySQL would otherwise read the rest of an unbuffered result before closing.
    result = getattr(conn, "_result", None)
    if result is not None:
        result.unbuffered_active = False


def close_quietly(conn: Any) -> None:
    with suppress(Exception):
        conn.close()
    with suppress(Exception):
        conn._force_close()


def _reason(exc: Exception) -> str:
    args: tuple[Any, ...] = exc.args
    return str(args[1]) if len(args) > 1 else str(exc)
