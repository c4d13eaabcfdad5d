"""What the API answers, as typed dataclasses.

Each model names the OpenAPI components it is read from (`SCHEMAS`), so a test can hold its
fields to the server's document. Every model keeps the whole JSON object it came from in `raw`:
a field the server adds later is there before this client knows its name.
"""

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

Json = dict[str, Any]

FINISHED = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
"""Statuses a run never leaves. `waiting` (a question for a person) is not one of them."""


@dataclass(frozen=True, kw_only=True)
class Model:
    SCHEMAS: ClassVar[tuple[str, ...]] = ()
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Self:
        names = {f.name for f in fields(cls) if f.name != "raw" and f.init}
        return cls(raw=data, **{n: _convert(cls, n, data.get(n)) for n in names})

    @classmethod
    def read_fields(cls) -> set[str]:
        """The JSON fields this model reads from the server's answers."""
        return {f.name for f in fields(cls) if f.name != "raw"}


def _convert(cls: type[Model], name: str, value: Any) -> Any:
    one = NESTED_ONE.get((cls.__name__, name))
    if one is not None:
        return one.from_json(value) if isinstance(value, dict) else None
    nested = NESTED.get((cls.__name__, name))
    if nested is not None and isinstance(value, list):
        return [nested.from_json(item) for item in value]
    if nested is not None:
        return []
    return value


@dataclass(frozen=True, kw_only=True)
class Me(Model):
    """The key (or admin session) in use: its tenant, role and expiry."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("Me",)
    tenant: str
    tenant_name: str
    role: str
    key_prefix: str | None
    key_name: str | None
    expires_at: str | None
    user: str | None


@dataclass(frozen=True, kw_only=True)
class SpecError(Model):
    """One problem validation found: its `type` (SPEC §1), where it is, and what to do."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("SpecError",)
    type: str
    message: str
    node_id: str | None
    path: str
    line: int | None
    column: int | None


@dataclass(frozen=True, kw_only=True)
class NodeEstimate(Model):
    """What one node that calls a model may cost: its prompt's tokens (from the initial state,
    and at most), its completion bound, and USD for both."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("NodeEstimate",)
    node_id: str
    call: str
    source: str
    model: str
    tokenizer: str
    prompt_tokens: int
    prompt_tokens_max: int
    completion_tokens_max: int
    price_per_million_tokens: Json
    cost: float
    cost_max: float
    unknown_inputs: list[str]
    rendered: bool


@dataclass(frozen=True, kw_only=True)
class PathEstimate(Model):
    """The nodes one way through the graph runs, and their tokens and cost."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("PathEstimate",)
    nodes: list[str]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    loop_passes: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class Estimate(Model):
    """A dry run's answer: per node, and the dearest and cheapest ways through."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("Estimate",)
    currency: str
    nodes: list[NodeEstimate]
    most_expensive: PathEstimate | None
    cheapest: PathEstimate | None


@dataclass(frozen=True, kw_only=True)
class ValidationResult(Model):
    """Every problem of a spec; with `estimate=True`, also what a run may cost (None when
    the spec is not valid, or one node was checked)."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("ValidationResult",)
    valid: bool
    errors: list[SpecError]
    warnings: list[SpecError]
    estimate: Estimate | None = None


@dataclass(frozen=True, kw_only=True)
class WorkflowSummary(Model):
    """A stored workflow as lists show it (no spec)."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("Workflow", "WorkflowDetail")
    id: str
    name: str
    description: str
    status: str
    version: int
    node_count: int
    created_at: str
    updated_at: str
    created_by: str
    updated_by: str


@dataclass(frozen=True, kw_only=True)
class Workflow(WorkflowSummary):
    """A stored workflow with its current spec."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("WorkflowDetail",)
    spec: Json


@dataclass(frozen=True, kw_only=True)
class Imported(Model):
    """An import's answer: the new workflow, the document's `format` (agentflow, dify,
    flowise) and the `report`: for an export, the sources created and reused and the
    versions; for Dify or Flowise, what `mapped`, what was `not_mapped` and why, and `notes`.

    The server declares this answer a free-form object, so no schema holds it (`SCHEMAS` is
    empty); its `workflow` is read as `WorkflowDetail`."""

    workflow: Workflow
    format: str
    report: Json


@dataclass(frozen=True, kw_only=True)
class Run(Model):
    """An execute answer: the outcome of a finished run (200), or a queued one's id and
    `location` (202, `accepted`), when only `execution_id` and `status` are known."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("ExecuteResponse", "ExecuteAccepted")
    execution_id: str
    status: str
    final_state: Json | None = None
    execution_time: float | None = None
    tokens_used: int | None = None
    cost: float | None = None
    error: Json | None = None
    location: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the run was queued (202) rather than answered with its outcome."""
        return self.location is not None

    @property
    def succeeded(self) -> bool:
        return self.status == "success"


@dataclass(frozen=True, kw_only=True)
class ExecutionSummary(Model):
    """An execution as lists (and cancel) show it: no states, no trace."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("ExecutionList", "Execution")
    id: str
    status: str
    mode: str
    workflow: str | None
    workflow_version: int | None
    workflow_name: str
    tokens_used: int
    cost: float
    error: Json | None
    created_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    execution_time: float | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, kw_only=True)
class NodeRun(Model):
    """One attempt of one node, from an execution's trace."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("NodeRun",)
    node_id: str
    node_type: str
    attempt: int
    loop_pass: int
    status: str
    started_at: str
    duration: float | None
    output: Any
    tokens: int
    cost: float
    error: Json | None


@dataclass(frozen=True, kw_only=True)
class Execution(ExecutionSummary):
    """An execution with its initial and final state and its per-node trace."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("Execution",)
    initial_state: Json | None
    final_state: Json | None
    waiting_for: Json | None
    replay_of: str | None
    """The execution this one replays, else None."""
    replay_from_node: str
    nodes: list[NodeRun]


@dataclass(frozen=True, kw_only=True)
class Problem(Model):
    """An RFC 9457 problem (`application/problem+json`), as every error answers."""

    SCHEMAS: ClassVar[tuple[str, ...]] = ("Problem",)
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[Json] = field(default_factory=list)
    retry_after: str | None = None

    @classmethod
    def from_json(cls, data: Json) -> Self:
        errors = data.get("errors")
        return cls(
            raw=data,
            type=str(data.get("type", "about:blank")),
            title=str(data.get("title", "")),
            status=int(data.get("status", 0)),
            detail=str(data.get("detail", "")),
            instance=data.get("instance"),
            errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
            retry_after=data.get("retry_after"),
        )

    @property
    def fields(self) -> list[str]:
        """The request fields the errors name (`initial_state`, `Idempotency-Key`, …)."""
        return [str(e["field"]) for e in self.errors if e.get("field")]


@dataclass(frozen=True)
class Event:
    """One server-sent event of a run: `node_started`, `node_finished`, `token`,
    `run_waiting`, `run_resumed`, … and last `end` (its `data` has the final `status`)."""

    id: int | None
    event: str
    data: Any


NESTED: dict[tuple[str, str], type[Model]] = {
    ("ValidationResult", "errors"): SpecError,
    ("ValidationResult", "warnings"): SpecError,
    ("Execution", "nodes"): NodeRun,
    ("Estimate", "nodes"): NodeEstimate,
}
"""Fields holding lists of another model (looked up by class name: subclasses share none)."""

NESTED_ONE: dict[tuple[str, str], type[Model]] = {
    ("ValidationResult", "estimate"): Estimate,
    ("Estimate", "most_expensive"): PathEstimate,
    ("Estimate", "cheapest"): PathEstimate,
    ("Imported", "workflow"): Workflow,
}
"""Fields holding one object of another model, or null."""
