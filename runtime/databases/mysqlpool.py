"""A small thread-safe pool of PyMySQL connections per MySQL/MariaDB source.

PyMySQL is synchronous: connections are used from worker threads (`asyncio.to_thread`), so the
pool is guarded by a lock and a semaphore rather than tied to an event loop. Pools are keyed by
a hash of the connection string, which is never logged or put in a message.
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from runtime.databases.base import ConnectionFailed, DatabaseError

SCHEMES = ("mysql", "mysql+pymysql", "mariadb")
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_PAD_S = 30
"""A socket read never waits longer than the source's statement timeout plus this."""

_POOLS: dict[str, MySQLPool] = {}
_POOLS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ServerInfo:
    mariadb: bool
    version: str


class MySQLPool:
    def __init__(self, params: dict[str, Any], size: int, wait_s: float) -> None:
        self.params = params
        self.wait_s = wait_s
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self.server: ServerInfo | None = None

    def acquire(self) -> Any:
        """A live connection (idle one pinged, or a new one); blocks for a free slot."""
        if not self._slots.acquire(timeout=self.wait_s):
            raise ConnectionFailed(
                f"Every pooled connection to the mysql source stayed busy for {self.wait_s:g} s."
            )
        try:
            return self._idle_connection() or self._connect()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Any, *, reusable: bool) -> None:
        if reusable and conn.open:
            with self._lock:
                self._idle.append(conn)
        else:
            close_quietly(conn)
        self._slots.release()

    def connect(self) -> Any:
        """A connection outside the pool's slots (used to KILL a runaway query)."""
        return self._connect()

    def _idle_connection(self) -> Any:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            try:
                conn.ping(reconnect=False)
                return conn
            except Exception:
                close_quietly(conn)

    def _connect(self) -> Any:
        import pymysql
        from pymysql.constants import CLIENT

        try:
            conn = pymysql.connect(**self.params, client_flag=0, local_infile=False)
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


def pool_for(dsn: str, env_name: str, size: int, statement_timeout_ms: int) -> MySQLPool:
    key = hashlib.sha256(f"{dsn}\0{size}\0{statement_timeout_ms}".encode()).hexdigest()
    with _POOLS_LOCK:
        if key not in _POOLS:
            params = parse_dsn(dsn, env_name)
            params["read_timeout"] = statement_timeout_ms / 1000 + READ_TIMEOUT_PAD_S
            _POOLS[key] = MySQLPool(params, size, wait_s=CONNECT_TIMEOUT_S * 3)
        return _POOLS[key]


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


def close_quietly(conn: Any) -> None:
    with suppress(Exception):
        conn.close()
    with suppress(Exception):
        conn._force_close()


def _reason(exc: Exception) -> str:
    args: tuple[Any, ...] = exc.args
    return str(args[1]) if len(args) > 1 else str(exc)
