"""Where LangGraph keeps each background run's checkpoints: the same PostgreSQL database as
everything else, or a SQLite file beside the SQLite database.

A checkpoint is written after every superstep (and each finished node's writes within one), so a
worker that dies loses nothing: the next worker resumes the run from there.
"""

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from psycopg.conninfo import make_conninfo


def _vendor() -> str:
    return str(connections["default"].vendor)


def postgres_conninfo(settings_dict: dict[str, Any]) -> str:
    params = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": str(settings_dict["PORT"]) if settings_dict.get("PORT") else None,
    }
    return make_conninfo(**{k: v for k, v in params.items() if v})


def sqlite_path() -> Path:
    return Path(settings.DATA_DIR) / "checkpoints.sqlite3"


@asynccontextmanager
async def checkpointer() -> AsyncIterator[Any]:
    """An async checkpoint saver for one run's event loop."""
    if _vendor() == "postgresql":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        info = postgres_conninfo(connections["default"].settings_dict)
        async with AsyncPostgresSaver.from_conn_string(info) as saver:
            yield saver
    else:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(str(sqlite_path())) as saver:
            yield saver


@contextmanager
def blocking_saver() -> Iterator[Any]:
    """A synchronous checkpoint saver, for work outside any run's event loop (a fork)."""
    if _vendor() == "postgresql":
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(
            postgres_conninfo(connections["default"].settings_dict)
        ) as saver:
            yield saver
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(str(sqlite_path())) as saver:
            yield saver


ZEROED = {"tokens_used": 0, "cost": 0.0}
"""Channels a fork starts from 0: the new run counts only what it uses itself."""


def checkpoint_fork(graph: Any, *, source: str, target: str, node_id: str) -> bool:
    """Copy into thread `target` the checkpoint of thread `source` taken just before `node_id`
    first ran there (with what the other tasks of that step wrote, not what `node_id` wrote),
    its token and cost counts zeroed: a run on `target` resumes from there, `node_id` first.
    `graph` is the compiled graph that wrote `source`. False when there is no such checkpoint.
    """
    with blocking_saver() as saver:
        history = graph.copy(update={"checkpointer": saver}).get_state_history(
            {"configurable": {"thread_id": source}}
        )
        before = [snapshot for snapshot in history if node_id in snapshot.next]
        if not before:
            return False
        snapshot = before[-1]  # newest first: the first time it was about to run
        saved = saver.get_tuple(snapshot.config)
        if saved is None:
            return False
        checkpoint = dict(saved.checkpoint)
        values = dict(checkpoint["channel_values"]) | _whole(graph, snapshot, checkpoint)
        checkpoint["channel_values"] = values | {k: v for k, v in ZEROED.items() if k in values}
        config = {"configurable": {"thread_id": target, "checkpoint_ns": ""}}
        forked = saver.put(config, checkpoint, saved.metadata, checkpoint["channel_versions"])
        skipped = {task.id for task in snapshot.tasks if task.name == node_id}
        writes: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in saved.pending_writes or ():
            if task_id not in skipped and not channel.startswith("__"):
                writes[task_id].append((channel, ZEROED.get(channel, value)))
        for task_id, written in writes.items():
            saver.put_writes(forked, written, task_id)
    return True


def _whole(graph: Any, snapshot: Any, checkpoint: Any) -> dict[str, Any]:
    """The delta channels' values (runtime.state: `outputs`, `errors`…) as full snapshots: a
    checkpoint holds only a step's delta of them, rebuilt from its ancestors', which a copy on
    another thread does not have."""
    from langgraph.channels import DeltaChannel
    from langgraph.checkpoint.serde.types import _DeltaSnapshot  # the form LangGraph 1.2 reads

    return {
        name: _DeltaSnapshot(snapshot.values[name])
        for name, channel in graph.channels.items()
        if isinstance(channel, DeltaChannel)
        and name in snapshot.values
        and name in checkpoint["channel_versions"]
    }


class SharedSaver:
    """One checkpoint saver for every run of a worker process, on its runtime loop: a small
    connection pool (PostgreSQL) or one connection (SQLite), however many runs are in flight.
    A saver per run opened a connection per run: 100 runs at once would take 100 connections."""

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self._saver: Any = None
        self._lock: asyncio.Lock | None = None

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:
        yield await self._get()

    async def _get(self) -> Any:
        if self._saver is not None:
            return self._saver
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._saver is None:
                self._saver = await self._open()
        return self._saver

    async def _open(self) -> Any:
        if _vendor() == "postgresql":
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
            from psycopg.rows import dict_row
            from psycopg_pool import AsyncConnectionPool

            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                postgres_conninfo(connections["default"].settings_dict),
                min_size=1,
                max_size=self.pool_size,
                kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
                open=False,
            )
            await pool.open()
            return AsyncPostgresSaver(pool)
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        return AsyncSqliteSaver(await aiosqlite.connect(str(sqlite_path())))


def setup_tables(settings_dict: dict[str, Any], vendor: str) -> None:
    """Create the checkpointer's tables (run by a migration)."""
    if vendor == "postgresql":
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(postgres_conninfo(settings_dict)) as saver:
            saver.setup()
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        sqlite_path().parent.mkdir(parents=True, exist_ok=True)
        with SqliteSaver.from_conn_string(str(sqlite_path())) as saver:
            saver.setup()
