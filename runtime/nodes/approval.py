"""A person's approval: the run pauses on a question until someone answers with one of the
node's options (LangGraph's `interrupt`; the run's checkpoint keeps the state meanwhile).

The answer becomes the state's `intent`, so the node's conditional edges branch on it as they
would on a router's, and `approval` (or `output_key`) holds `{answer, comment, by, at}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.types import interrupt

from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.node_metadata import ApprovalMetadata
from runtime.nodes.base import Node, NodeOutput, State


class InvalidAnswer(NodeError):
    """The answer the run was resumed with is not one of the node's options."""

    code = "invalid_answer"


class ApprovalNode(Node):
    kind = "approval"
    result_key = "approval"
    meta: ApprovalMetadata

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        question = await self.evaluate(lambda: self.render(self.meta.question, state))
        asked = {
            "node_id": self.node_id,
            "question": question,
            "options": list(self.meta.options),
            "expires_after_seconds": self.meta.expires_after_seconds,
            "on_expiry": self.meta.on_expiry,
        }
        ctx.note_input(self.node_id, {"question": question, "options": asked["options"]})
        given = interrupt(asked)  # the first time: the run waits here (GraphInterrupt)
        answer = self._answer(given)
        return NodeOutput(result=answer, updates={"intent": answer["answer"]})

    def _answer(self, given: Any) -> dict[str, Any]:
        found = given if isinstance(given, Mapping) else {"answer": given}
        answer = found.get("answer")
        if answer not in self.meta.options:
            raise InvalidAnswer(
                f"Node '{self.node_id}' was answered {answer!r}, not one of its options "
                f"({', '.join(self.meta.options)}).",
                node_id=self.node_id,
            )
        return {key: found.get(key) for key in ("answer", "comment", "by", "at")}
