"""Validate a WorkflowSpec and report every problem in one pass (SPEC §1, "Validation errors").

`validate_spec` never raises on user input and stays linear in the spec's size: raw size and node
count are checked before anything expensive, nesting depth is bounded without recursion, and
templates and CEL rules are compiled once per distinct string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from runtime.errors import SpecError
from runtime.grants import Grants
from runtime.jsonpos import locate
from runtime.spec import SourceSpec, WorkflowSpec
from runtime.validation_checks import run_checks
from runtime.validation_load import load
from runtime.validation_report import Report
from runtime.validation_workflows import SubWorkflow, WorkflowResolver

__all__ = [
    "PLATFORM_SECRET_NAMES",
    "PLATFORM_SECRET_PREFIXES",
    "ValidationOptions",
    "ValidationResult",
    "default_env_allowed",
    "validate_spec",
]

# The platform's own variables: never nameable by a spec, whatever a tenant's allowlist says.
PLATFORM_SECRET_NAMES = frozenset({"DJANGO_SECRET_KEY", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"})
PLATFORM_SECRET_PREFIXES = ("DJANGO_", "AGENTFLOW_INTERNAL_")


def default_env_allowed(name: str) -> bool:
    """Allow any variable that is not the platform's own."""
    upper = name.upper()
    return upper not in PLATFORM_SECRET_NAMES and not upper.startswith(PLATFORM_SECRET_PREFIXES)


@dataclass(frozen=True)
class ValidationOptions:
    max_bytes: int = 1_048_576
    """Largest spec, in bytes of JSON (measured compactly when given a dict)."""
    max_nodes: int = 1000
    """Most nodes in one spec."""
    max_depth: int = 64
    """Deepest nesting of JSON objects and arrays."""
    max_steps: int = 10_000
    """The operator's ceiling on a spec's `limits.max_steps` (node executions per run)."""
    resolve_source: Callable[[str], SourceSpec | None] | None = None
    """Look up a source stored for the tenant by id; inline sources win. None: inline only."""
    env_allowed: Callable[[str], bool] | None = None
    """The tenant's grant of environment variables. The platform's own are refused regardless."""
    grants: Grants | None = None
    """The tenant's grants with their bindings: a variable is granted when one names it, and may
    go only to the source kinds and hosts a grant binds it to. None: bindings are not checked."""
    node_types: Mapping[str, type[BaseModel]] | None = None
    """Plugin node types: type name → metadata model. Built-in names cannot be replaced."""
    only_node: str | None = None
    """Report only problems of this node's metadata and of the edges touching it."""
    resolve_workflow: WorkflowResolver | None = None
    """Look up a workflow stored for the tenant by id or name (and version). None: `workflow`
    nodes cannot be checked, and are errors."""
    max_workflow_depth: int = 3
    """How deep workflows may call workflows (a `workflow` node's child is at depth 1)."""
    workflow_path: tuple[tuple[str, str], ...] = ()
    """(id, name) of the workflows this spec is called from, itself last when it is stored:
    a `workflow` node calling one of them is a cycle."""
    node_prefix: str = ""
    """What this spec's node ids are prefixed with in the trace (`caller/`)."""
    workflow_tally: list[int] | None = field(default=None, compare=False)
    """Sub-workflows checked so far under one top-level spec (bounds the work)."""


@dataclass(frozen=True)
class ValidationResult:
    errors: list[SpecError]
    warnings: list[SpecError]
    spec: WorkflowSpec | None = None
    """The parsed spec when it is valid (and not validated with `only_node`)."""
    metadata: Mapping[str, BaseModel] = field(default_factory=dict)
    """Each node's validated metadata model, by node id."""
    sources: Mapping[str, SourceSpec] = field(default_factory=dict)
    """Every source the nodes use, inline or stored, by id."""
    workflows: Mapping[str, SubWorkflow] = field(default_factory=dict)
    """The stored workflow each `workflow` node runs, as validated, by node id."""
    calls_workflows: bool = False
    """The spec has `workflow` nodes: its result depends on other stored workflows."""

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "errors": [e.to_dict() for e in self.errors],
            "warnings": [w.to_dict() for w in self.warnings],
        }


def validate_spec(
    data: Mapping[str, Any] | str | bytes | Any, options: ValidationOptions | None = None
) -> ValidationResult:
    """Check a WorkflowSpec and report every problem found.

    Args:
        data: the spec as a parsed JSON object, or as JSON text (str or bytes), in which case
            every problem also carries its line and column.
        options: limits, the tenant's stored sources and env grant, plugin node types.
    """
    opts = options or ValidationOptions()
    report = Report()
    loaded = load(data, opts.max_bytes, opts.max_depth, report)
    context = None
    if loaded.obj is not None:
        context = run_checks(loaded.obj, opts, report, _env_check(opts))
    if opts.only_node is not None and loaded.obj is not None:
        report.keep_only_node(opts.only_node, loaded.obj)
    errors, warnings = report.errors, report.warnings
    if loaded.text is not None:
        errors, warnings = (
            _with_positions(loaded.text, errors),
            _with_positions(loaded.text, warnings),
        )
    return _result(errors, warnings, context, opts)


def _env_check(opts: ValidationOptions) -> Callable[[str], bool]:
    checks = [c for c in (opts.env_allowed, opts.grants.names if opts.grants else None) if c]
    return lambda name: default_env_allowed(name) and all(check(name) for check in checks)


def _result(
    errors: list[SpecError], warnings: list[SpecError], context: Any, opts: ValidationOptions
) -> ValidationResult:
    calls = context is not None and context.calls_workflows
    if context is None or errors:
        return ValidationResult(errors, warnings, calls_workflows=calls)
    spec = context.spec if opts.only_node is None else None
    return ValidationResult(
        errors,
        warnings,
        spec,
        context.metadata_by_id,
        context.used_sources,
        context.workflows,
        calls,
    )


def _with_positions(text: str, problems: list[SpecError]) -> list[SpecError]:
    todo = [p for p in problems if p.line is None]
    if not todo:
        return problems
    where = locate(text, {p.path for p in todo})
    return [_placed(p, where) for p in problems]


def _placed(problem: SpecError, where: Mapping[str, tuple[int, int]]) -> SpecError:
    if problem.line is not None or problem.path not in where:
        return problem
    line, column = where[problem.path]
    return SpecError(problem.type, problem.message, problem.path, problem.node_id, line, column)


def validate_source(source: Any, options: ValidationOptions | None = None) -> list[SpecError]:
    """Check one source (`{"id", "kind", "config"}`) as a spec's inline source is checked:
    its kind, its config, literal secrets and the env grant. Paths are relative to the source
    (`/config/api_key`)."""
    holder = {
        "name": "source-check",
        "start_node": "input",
        "nodes": [{"id": "input", "type": "input"}],
        "sources": [source],
    }
    prefix = "/sources/0"
    result = validate_spec(holder, options)
    return [
        SpecError(e.type, e.message, e.path[len(prefix) :], None)
        for e in result.errors
        if e.path == prefix or e.path.startswith(prefix + "/")
    ]
