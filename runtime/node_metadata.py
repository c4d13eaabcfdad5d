"""The metadata each node type accepts (SPEC §2), one model per type, listed in `NODE_METADATA`.

Every model answers the validator's questions through a few methods (which source it names and
which kinds it can use, which strings are templates or CEL rules, which intents it can produce),
so the validator never branches on a type string. Plugin models may subclass `NodeMetadata` to
join in; plain pydantic models are validated and otherwise left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    Field,
    JsonValue,
    PrivateAttr,
    RootModel,
    StringConstraints,
    field_validator,
    model_validator,
)

from runtime.egress.headers import literal_secret
from runtime.sqltext import single_select_problem
from runtime.strict import (
    ImageQuality,
    ImageSize,
    ImageStyle,
    NonEmpty,
    StateKey,
    StrictModel,
    image_size_problem,
)

Loc = tuple[str | int, ...]
IntentName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SourceRef = Annotated[str, StringConstraints(min_length=1, max_length=128)]

LLM_SOURCE_KINDS = frozenset({"openai", "azure_openai", "anthropic", "google"})
OPENAI_ONLY = frozenset({"openai"})


class RetryPolicy(StrictModel):
    """Retry of retryable failures only (provider 429/5xx, timeouts, connection errors)."""

    max_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts in all, the first included."
    )
    initial_interval: float = Field(
        default=0.5, ge=0, le=300, description="Seconds before the 2nd attempt."
    )
    backoff_factor: float = Field(default=2.0, ge=1, le=10, description="Multiplier between waits.")
    max_interval: float = Field(
        default=10.0, gt=0, le=3600, description="Longest wait, in seconds."
    )


class NodeMetadata(StrictModel):
    """Fields every node may carry, and the hooks the validator calls."""

    output_key: StateKey | None = Field(
        default=None, description="Write the main result under this key."
    )
    timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)
    retry: RetryPolicy | None = None
    on_error: Literal["fail", "continue"] = "fail"

    def source_ref(self) -> str | None:
        return None

    def source_kinds(self) -> frozenset[str]:
        return frozenset()

    def templates(self) -> Iterator[tuple[Loc, str]]:
        return iter(())

    def expressions(self) -> Iterator[tuple[Loc, str]]:
        return iter(())

    def produced_intents(self) -> frozenset[str] | None:
        """The intents a router can set; None for nodes that are not routers."""
        return None

    def source_problems(self, config: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
        """Problems visible only with the source's config at hand (e.g. image size vs model)."""
        return iter(())

    def literal_secrets(self) -> Iterator[tuple[Loc, str]]:
        """Credentials written into the metadata itself (reported as `literal_secret`)."""
        return iter(())

    def written_keys(self) -> frozenset[str]:
        """State keys the node sets besides its result key (a sub-workflow's `output`)."""
        return frozenset()


class _Sourced(NodeMetadata):
    source: SourceRef
    SOURCE_KINDS: ClassVar[frozenset[str]] = LLM_SOURCE_KINDS

    def source_ref(self) -> str | None:
        return self.source

    def source_kinds(self) -> frozenset[str]:
        return self.SOURCE_KINDS


def json_strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Yield every string inside a JSON value with its location (iteratively: no deep recursion)."""
    stack: list[tuple[Loc, Any]] = [(loc, value)]
    while stack:
        here, item = stack.pop()
        if isinstance(item, str):
            yield here, item
        elif isinstance(item, dict):
            stack.extend(((*here, k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend(((*here, i), v) for i, v in enumerate(item))


def _optional(loc: Loc, value: str | None) -> Iterator[tuple[Loc, str]]:
    if value is not None:
        yield loc, value


# --- input -------------------------------------------------------------------------------------


class InputMetadata(NodeMetadata):
    required: list[StateKey] = Field(default_factory=lambda: ["user_input"])
    state_schema: dict[str, JsonValue] | None = Field(
        default=None, alias="schema", description="JSON Schema of the initial state."
    )

    @field_validator("state_schema")
    @classmethod
    def _is_a_json_schema(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        if value is not None:
            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                where = "/".join(str(p) for p in exc.absolute_path)
                raise ValueError(
                    f"is not a valid JSON Schema: {exc.message}"
                    + (f" (at {where})" if where else "")
                ) from None
        return value


# --- router ------------------------------------------------------------------------------------


class _Router(NodeMetadata):
    default: IntentName

    def _named(self) -> frozenset[str]:
        return frozenset()

    def produced_intents(self) -> frozenset[str] | None:
        return self._named() | {self.default}


class KeywordRouter(_Router):
    strategy: Literal["keyword"]
    routes: dict[IntentName, list[NonEmpty]] = Field(min_length=1)

    def _named(self) -> frozenset[str]:
        return frozenset(self.routes)


class Rule(StrictModel):
    when: NonEmpty = Field(description="A CEL expression over the state's fields.")
    intent: IntentName


class RulesRouter(_Router):
    strategy: Literal["rules"]
    rules: list[Rule] = Field(min_length=1)

    def _named(self) -> frozenset[str]:
        return frozenset(rule.intent for rule in self.rules)

    def expressions(self) -> Iterator[tuple[Loc, str]]:
        return ((("rules", i, "when"), rule.when) for i, rule in enumerate(self.rules))


class LLMRouter(_Router, _Sourced):
    SOURCE_KINDS = OPENAI_ONLY
    strategy: Literal["llm"]
    intents: dict[IntentName, str] = Field(min_length=1)
    prompt: str | None = None

    def _named(self) -> frozenset[str]:
        return frozenset(self.intents)

    def templates(self) -> Iterator[tuple[Loc, str]]:
        return _optional(("prompt",), self.prompt)


class SemanticRouter(_Router, _Sourced):
    SOURCE_KINDS = OPENAI_ONLY
    strategy: Literal["semantic"]
    examples: dict[IntentName, list[NonEmpty]] = Field(min_length=1)
    threshold: float = Field(default=0.8, ge=0, le=1)

    def _named(self) -> frozenset[str]:
        return frozenset(self.examples)


RouterStrategy = Annotated[
    KeywordRouter | RulesRouter | LLMRouter | SemanticRouter, Field(discriminator="strategy")
]


class OneOfStrategies(BaseModel):
    """Delegates the validator's hooks to the strategy model inside a RootModel."""

    def _inner(self) -> NodeMetadata:
        return cast(NodeMetadata, getattr(self, "root"))  # noqa: B009 - `root` comes from RootModel

    def source_ref(self) -> str | None:
        return self._inner().source_ref()

    def source_kinds(self) -> frozenset[str]:
        return self._inner().source_kinds()

    def templates(self) -> Iterator[tuple[Loc, str]]:
        return self._inner().templates()

    def expressions(self) -> Iterator[tuple[Loc, str]]:
        return self._inner().expressions()

    def produced_intents(self) -> frozenset[str] | None:
        return self._inner().produced_intents()

    def source_problems(self, config: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
        return self._inner().source_problems(config)

    def literal_secrets(self) -> Iterator[tuple[Loc, str]]:
        return self._inner().literal_secrets()


class RouterMetadata(OneOfStrategies, RootModel[RouterStrategy]):
    """`strategy` picks the model: keyword, rules (CEL), llm or semantic; `default` always."""


# --- llm ---------------------------------------------------------------------------------------


class LLMMetadata(_Sourced):
    prompt: NonEmpty
    system: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: Literal["text", "json"] = "text"
    stream: bool = False

    def templates(self) -> Iterator[tuple[Loc, str]]:
        yield ("prompt",), self.prompt
        yield from _optional(("system",), self.system)


# --- image -------------------------------------------------------------------------------------


class ImageMetadata(_Sourced):
    SOURCE_KINDS = frozenset({"openai_image"})
    prompt: NonEmpty
    size: ImageSize | None = None
    quality: ImageQuality | None = None
    style: ImageStyle | None = None
    download: bool = True

    def templates(self) -> Iterator[tuple[Loc, str]]:
        yield ("prompt",), self.prompt

    def source_problems(self, config: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
        model = config.get("model_name")
        problem = image_size_problem(model if isinstance(model, str) else None, self.size)
        if problem:
            yield ("size",), problem


# --- db ----------------------------------------------------------------------------------------


class DBMetadata(_Sourced):
    SOURCE_KINDS = frozenset({"postgres", "mysql", "sqlite"})
    query: NonEmpty = Field(description="Exactly one SELECT, values bound through `params`.")
    params: dict[str, JsonValue] = Field(default_factory=dict)
    max_rows: int = Field(default=100, ge=1, le=100_000)
    page: int | None = Field(default=None, ge=1)
    page_size: int | None = Field(default=None, ge=1, le=100_000)
    timeout_ms: int | None = Field(default=None, gt=0, le=3_600_000)

    @field_validator("query")
    @classmethod
    def _one_select(cls, value: str) -> str:
        problem = single_select_problem(value)
        if problem:
            raise ValueError(f"The query {problem}")
        return value

    def templates(self) -> Iterator[tuple[Loc, str]]:
        return json_strings(self.params, ("params",))


# --- aggregator --------------------------------------------------------------------------------


class MergeAggregator(NodeMetadata):
    strategy: Literal["merge"]


class PriorityAggregator(NodeMetadata):
    strategy: Literal["priority"]
    order: list[StateKey] = Field(min_length=1)


class TemplateAggregator(NodeMetadata):
    strategy: Literal["template"]
    template: str

    def templates(self) -> Iterator[tuple[Loc, str]]:
        yield ("template",), self.template


class FunctionAggregator(NodeMetadata):
    strategy: Literal["function"]
    function: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")]


AggregatorStrategy = Annotated[
    MergeAggregator | PriorityAggregator | TemplateAggregator | FunctionAggregator,
    Field(discriminator="strategy"),
]


class AggregatorMetadata(OneOfStrategies, RootModel[AggregatorStrategy]):
    """`strategy` picks the model: merge, priority, template or function."""


# --- http --------------------------------------------------------------------------------------


class HTTPMetadata(_Sourced):
    SOURCE_KINDS = frozenset({"http"})
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = Field(default="", description="Template, appended to the source's base_url.")
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: JsonValue = Field(default=None, description="JSON; its strings are templates.")
    timeout: float | None = Field(default=None, gt=0, le=300)
    retries: int | None = Field(default=None, ge=0, le=10)

    def templates(self) -> Iterator[tuple[Loc, str]]:
        yield ("path",), self.path
        yield from json_strings(self.query, ("query",))
        yield from json_strings(self.headers, ("headers",))
        yield from json_strings(self.body, ("body",))

    def literal_secrets(self) -> Iterator[tuple[Loc, str]]:
        for name, value in self.headers.items():
            reason = literal_secret(name, value)
            if reason:
                yield ("headers", name), reason


# --- approval ----------------------------------------------------------------------------------


class ApprovalMetadata(NodeMetadata):
    """A person's answer: the run waits (`waiting`) until one of `options` is given."""

    question: NonEmpty = Field(description="Template: what the person is asked.")
    options: list[IntentName] = Field(
        default_factory=lambda: ["approve", "reject"],
        min_length=1,
        max_length=20,
        description="The answers allowed; the answer becomes `intent`, so edges can branch on it.",
    )
    expires_after_seconds: float | None = Field(
        default=None, gt=0, le=90 * 86_400, description="How long the run waits, at most."
    )
    on_expiry: IntentName = Field(
        default="fail", description='"fail", or the option taken when the wait expires.'
    )

    @model_validator(mode="after")
    def _known_answers(self) -> ApprovalMetadata:
        if len(set(self.options)) != len(self.options):
            raise ValueError("options repeat an answer; list each once.")
        if self.on_expiry != "fail" and self.on_expiry not in self.options:
            raise ValueError(
                f'on_expiry must be "fail" or one of the options ({", ".join(self.options)}).'
            )
        return self

    def templates(self) -> Iterator[tuple[Loc, str]]:
        yield ("question",), self.question

    def produced_intents(self) -> frozenset[str] | None:
        return frozenset(self.options)


# --- workflow ----------------------------------------------------------------------------------

_STATE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED_STATE_KEYS = frozenset({"tokens_used", "cost", "outputs", "errors", "metadata"})
"""Keys summed or merged by the run itself: a sub-workflow's `output` may not write them."""
WorkflowRef = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class WorkflowMetadata(NodeMetadata):
    """Runs a stored workflow of the same tenant inside this run (runtime/nodes/workflow.py)."""

    workflow: WorkflowRef = Field(description="A stored workflow of yours: its id (wf_…) or name.")
    version: int | None = Field(
        default=None, ge=1, description="The version to run; none: its current version."
    )
    input: dict[StateKey, str] = Field(
        default_factory=lambda: {"user_input": "user_input"},
        description="The sub-workflow's initial state: its key → a key of this run's state, "
        'or a template ("{{ outputs.writer }}").',
    )
    output: dict[StateKey, StateKey] = Field(
        default_factory=dict,
        description="Keys of this run's state set from the sub-workflow's final state: "
        "this run's key → the sub-workflow's key. The node's result is its final_output.",
    )
    _child: Any = PrivateAttr(default=None)
    """The sub-workflow as validated (runtime.validation_workflows.SubWorkflow)."""

    @field_validator("input")
    @classmethod
    def _keys_or_templates(cls, value: dict[str, str]) -> dict[str, str]:
        for key, source in value.items():
            if "{" not in source and not _STATE_KEY.match(source):
                raise ValueError(
                    f"input.{key} is {source!r}: name a state key (user_input) or write a "
                    'template ("{{ user_input }}")'
                )
        return value

    @field_validator("output")
    @classmethod
    def _not_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(RESERVED_STATE_KEYS.intersection(value))
        if taken:
            raise ValueError(f"{', '.join(taken)} are kept by the run itself; map to other keys")
        return value

    @property
    def child(self) -> Any:
        return self._child

    def templates(self) -> Iterator[tuple[Loc, str]]:
        return ((("input", key), value) for key, value in self.input.items() if "{" in value)

    def written_keys(self) -> frozenset[str]:
        return frozenset(self.output)


# Metadata models that answer the validator's questions (plugins may subclass NodeMetadata).
HOOK_TYPES = (NodeMetadata, OneOfStrategies)
Hooked = NodeMetadata | OneOfStrategies

NODE_METADATA: dict[str, type[BaseModel]] = {
    "input": InputMetadata,
    "router": RouterMetadata,
    "llm": LLMMetadata,
    "image": ImageMetadata,
    "db": DBMetadata,
    "aggregator": AggregatorMetadata,
    "http": HTTPMetadata,
    "approval": ApprovalMetadata,
    "workflow": WorkflowMetadata,
}
