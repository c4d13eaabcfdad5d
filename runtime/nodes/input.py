from __future__ import annotations

from jsonschema import Draft202012Validator

from runtime.context import RunContext
from runtime.errors import InvalidInput
from runtime.node_metadata import InputMetadata
from runtime.nodes.base import Node, NodeOutput, State


class InputNode(Node):
    """Checks the initial state: the `required` keys are present, and `schema` validates it."""

    kind = "input"
    meta: InputMetadata

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        given = ctx.initial  # the caller's values, before the reducers' defaults fill the state
        missing = [key for key in self.meta.required if given.get(key) in (None, "")]
        if missing:
            raise InvalidInput(
                f"The initial state lacks {', '.join(missing)}; pass it in initial_state.",
                node_id=self.node_id,
            )
        if self.meta.state_schema is not None:
            validator = Draft202012Validator(self.meta.state_schema)
            problems = sorted(validator.iter_errors(dict(given)), key=lambda e: list(e.path))
            if problems:
                first = problems[0]
                where = "/" + "/".join(str(p) for p in first.absolute_path)
                raise InvalidInput(
                    f"The initial state does not fit the input schema at {where}: {first.message}",
                    node_id=self.node_id,
                )
        return NodeOutput(result=None)
