"""The db and http nodes' overhead over a bare driver call, in one process.

Run: `python bench/bench_nodes.py [--repeat N]` (PostgreSQL from DATABASE_URL, default the
local `test` database). db: the same one-row SELECT through a warm psycopg pool and through the
db node on the process's runtime loop, whose pool is shared by every run (early check, READ
ONLY transaction with SET LOCAL timeouts, the query nested under the row/byte guard; ROLLBACK
and DISCARD ALL after return, in the background). http: the same GET against a local server
through a warm httpx2 client and through the http node (the egress door: address check, pinned
connection, size cap). Bare and node calls are timed in turns, so both see the same load.
Targets: db node under 1 ms over bare at the median; http node under 2 ms.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
import psycopg  # noqa: E402
from psycopg_pool import AsyncConnectionPool  # noqa: E402

from runtime import loop  # noqa: E402
from runtime.context import RunContext  # noqa: E402
from runtime.databases import database_factories  # noqa: E402
from runtime.databases.functions import SQLPolicy  # noqa: E402
from runtime.node_metadata import DBMetadata, HTTPMetadata  # noqa: E402
from runtime.nodes.db import DBNode  # noqa: E402
from runtime.nodes.http import HTTPNode  # noqa: E402
from runtime.providers import PROVIDERS  # noqa: E402
from runtime.spec import SourceSpec  # noqa: E402

DSN = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
SQL = "SELECT id, name FROM agentflow_bench_rows WHERE id = %(id)s"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

    def do_GET(self) -> None:
        body = json.dumps({"name": "Ada", "plan": "pro"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def _medians_ms(
    bare: Callable[[], Awaitable[Any]], node: Callable[[], Awaitable[Any]], repeat: int
) -> tuple[float, float]:
    """Median ms of each, timed in turns so that both see the same load on a busy machine."""
    for _ in range(50):
        await bare()
        await node()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for call, found in zip((bare, node), times, strict=True):
            start = time.perf_counter()
            await call()
            found.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def _prepare_table() -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS agentflow_bench_rows (id int PRIMARY KEY, name text)"
        )
        conn.execute("INSERT INTO agentflow_bench_rows VALUES (1, 'one') ON CONFLICT DO NOTHING")


async def bench_db(repeat: int) -> tuple[float, float]:
    source = SourceSpec.model_validate(
        {"id": "pg", "kind": "postgres", "config": {"connection_string_env": "PG", "pool_size": 2}}
    )
    # The bench's DSN is the local superuser: allowed here, as an operator may allow it.
    databases = database_factories(ROOT, policy=SQLPolicy(allow_privileged_roles=True))
    ctx = RunContext(env={"PG": DSN}.get, providers=databases)
    meta = DBMetadata.model_validate({"source": "pg", "query": SQL, "params": {"id": 1}})
    node = DBNode("rows", meta, {"pg": source})
    # autocommit: the bare query is one round trip (no implicit BEGIN, no ROLLBACK on return).
    bare_pool = AsyncConnectionPool(
        DSN, min_size=2, max_size=2, open=False, kwargs={"autocommit": True}
    )
    async with bare_pool as pool:
        await pool.wait()

        async def bare() -> None:
            async with pool.connection() as conn:
                cursor = await conn.execute(SQL, {"id": 1})
                assert await cursor.fetchall() == [(1, "one")]

        async def through_node() -> None:
            out = await node.run({}, ctx)
            assert out.result["rows"] == [{"id": 1, "name": "one"}]

        result = await _medians_ms(bare, through_node, repeat)
    await ctx.aclose()
    return result


async def bench_http(repeat: int, url: str) -> tuple[float, float]:
    source = SourceSpec.model_validate(
        {"id": "crm", "kind": "http", "config": {"base_url": url, "allowed_hosts": ["127.0.0.1"]}}
    )
    local = frozenset({"127.0.0.1"})  # the operator trusts the local stand-in API
    ctx = RunContext(env=lambda _name: None, providers=PROVIDERS, trusted_hosts=local)
    meta = HTTPMetadata.model_validate({"source": "crm", "path": "/customers/1"})
    node = HTTPNode("crm", meta, {"crm": source})
    async with httpx2.AsyncClient() as client:

        async def bare() -> None:
            answer = await client.get(f"{url}/customers/1")
            assert answer.json()["name"] == "Ada"

        async def through_node() -> None:
            out = await node.run({}, ctx)
            assert out.result["body"]["name"] == "Ada"

        result = await _medians_ms(bare, through_node, repeat)
    await ctx.aclose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    _prepare_table()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    db_bare, db_node = loop.run(bench_db(args.repeat))
    http_bare, http_node = asyncio.run(bench_http(args.repeat, url))
    server.shutdown()
    print(f"median ms over {args.repeat} calls        bare    node   overhead")
    print(
        f"db   (PostgreSQL, warm pool)      {db_bare:7.3f} {db_node:7.3f} {db_node - db_bare:+8.3f}"
        "   (target < 1 ms)"
    )
    print(
        f"http (local server)               {http_bare:7.3f} {http_node:7.3f} "
        f"{http_node - http_bare:+8.3f}   (target < 2 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
