from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from referencing.exceptions import Unresolvable

from runtime.context import RunContext
from runtime.errors import InvalidInput, NodeError
from runtime.node_metadata import InputMetadata
from runtime.nodes.base import Node, NodeOutput, State


class InvalidSchema(NodeError):
    """The input node's schema cannot be used to check a state (a $ref that goes nowhere)."""

    code = "invalid_schema"


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
            problems = self._problems(given)
            if problems:
                first = problems[0]
                where = "/" + "/".join(str(p) for p in first.absolute_path)
                raise InvalidInput(
                    f"The initial state does not fit the input schema at {where}: {first.message}",
                    node_id=self.node_id,
                )
        return NodeOutput(result=None)

    def _problems(self, given: Mapping[str, Any]) -> list[ValidationError]:
        validator = Draft202012Validator(self.meta.state_schema)
        try:
            return sorted(validator.iter_errors(dict(given)), key=lambda e: list(e.path))
        except Unresolvable as exc:  # a $ref to another document, or to nothing in this one
            problem = f"a $ref it holds cannot be resolved ({type(exc).__name__}: {exc})"
        except RecursionError:  # {"$ref": "#"}, or refs that lead back to themselves
            problem = "its $refs lead back to themselves without ever checking a value"
        raise InvalidSchema(
            f"Node '{self.node_id}' cannot check the initial state: {problem}. Fix the node's "
            "metadata.schema (a $ref may point only inside it, at $defs).",
            node_id=self.node_id,
        )
