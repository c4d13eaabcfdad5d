from __future__ import annotations

from typing import Any

from runtime.context import RunContext
from runtime.databases.base import Query
from runtime.databases.limits import db_limits
from runtime.node_metadata import DBMetadata
from runtime.nodes.base import Node, NodeOutput, State


class DBNode(Node):
    """One SELECT on the source's database, values bound by the driver (SPEC §2 `db`).

    `params` values may be templates; they are rendered to strings and bound, never spliced.
    `page`/`page_size` page through the result; `max_rows` caps what one run returns, and the
    operator's `DBLimits.max_rows` caps both.
    """

    kind = "db"
    result_key = "db_result"
    meta: DBMetadata

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        size = min(self.meta.page_size or self.meta.max_rows, self.meta.max_rows)
        size = min(size, db_limits().max_rows)
        query = Query(
            sql=self.meta.query,
            params=await self.evaluate(lambda: self._params(state)),
            max_rows=size,
            offset=((self.meta.page or 1) - 1) * size,
            timeout_ms=self.meta.timeout_ms,
        )
        ctx.note_input(self.node_id, {"query": query.sql, "params": query.params})
        rows = await self.adapter(ctx).select(query)
        return NodeOutput(result=rows.as_result(), details={"row_count": len(rows.rows)})

    def _params(self, state: State) -> dict[str, Any]:
        return {name: self._param(value, state) for name, value in self.meta.params.items()}

    def _param(self, value: Any, state: State) -> Any:
        return self.render(value, state) if isinstance(value, str) else value
