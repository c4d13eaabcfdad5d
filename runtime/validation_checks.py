"""The checks on the parts of a spec: ids, node types and metadata, templates, rules and sources.

Every check works on the raw JSON object and skips entries that are malformed (those already have
a `schema` error), so one broken node or edge never hides the problems of the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ValidationError

from runtime.egress.headers import literal_secret
from runtime.errors import ErrorType
from runtime.grants import CredentialUse
from runtime.node_metadata import HOOK_TYPES, NODE_METADATA, Hooked, Loc
from runtime.sandbox.expressions import expression_problem
from runtime.sandbox.templates import template_problem
from runtime.source_configs import CREDENTIAL_HEADER, CREDENTIAL_KEY, SOURCE_CONFIGS
from runtime.spec import SourceSpec, WorkflowSpec
from runtime.validation_report import (
    Report,
    dotted,
    items,
    known,
    located,
    subject,
    text,
)

if TYPE_CHECKING:
    from runtime.validation import ValidationOptions


@dataclass
class Context:
    obj: dict[str, Any]
    opts: ValidationOptions
    report: Report
    env_ok: Callable[[str], bool]
    node_types: dict[str, type[BaseModel]]
    spec: WorkflowSpec | None = None
    node_index: dict[str, int] = field(default_factory=dict)
    metadata_by_id: dict[str, BaseModel] = field(default_factory=dict)
    inline_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    used_sources: dict[str, SourceSpec] = field(default_factory=dict)
    workflows: dict[str, Any] = field(default_factory=dict)
    """node id → runtime.validation_workflows.SubWorkflow, for each `workflow` node resolved."""
    calls_workflows: bool = False
    _resolved: dict[str, SourceSpec | None] = field(default_factory=dict)

    def source(self, ref: str) -> tuple[str, dict[str, Any]] | None:
        """The (kind, config) of a source: inline first, then stored for the tenant.

        A malformed inline source gives kind "" (its own schema errors say what is wrong).
        """
        inline = self.inline_sources.get(ref)
        if inline is not None:
            return _kind_and_config(inline) or ("", {})
        stored = self._stored(ref)
        return (stored.kind, dict(stored.config)) if stored is not None else None

    def _stored(self, ref: str) -> SourceSpec | None:
        if ref not in self._resolved:
            resolver = self.opts.resolve_source
            self._resolved[ref] = resolver(ref) if resolver is not None else None
        found = self._resolved[ref]
        if found is not None:
            self.used_sources[ref] = found
        return found


def _kind_and_config(source: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    kind, config = text(source, "kind"), source.get("config", {})
    return (kind, config) if kind is not None and isinstance(config, dict) else None


def run_checks(
    obj: dict[str, Any], opts: ValidationOptions, report: Report, env_ok: Callable[[str], bool]
) -> Context | None:
    """Run every check; None when the spec is too large to look at further."""
    nodes = obj.get("nodes")
    if isinstance(nodes, list) and len(nodes) > opts.max_nodes:
        msg = (
            f"The spec has {len(nodes):,} nodes; the limit is {opts.max_nodes:,}. "
            "Split the workflow."
        )
        report.add(ErrorType.SPEC_TOO_LARGE, msg, ("nodes",))
        return None
    ctx = Context(obj, opts, report, env_ok, {**dict(opts.node_types or {}), **NODE_METADATA})
    ctx.spec = _parse(obj, report)
    for check in CHECKS:
        check(ctx)
    _add_inline_used(ctx)
    return ctx


def _parse(obj: dict[str, Any], report: Report) -> WorkflowSpec | None:
    try:
        return WorkflowSpec.model_validate(obj)
    except ValidationError as exc:
        report.add_pydantic(exc, (), obj, ErrorType.SCHEMA)
        return None


def _check_duplicate_ids(ctx: Context) -> None:
    for key in ("nodes", "queues", "sources"):
        first: dict[str, int] = {}
        for i, entry in items(ctx.obj, key):
            ident = text(entry, "id")
            if ident is None:
                continue
            if ident in first:
                label = key[:-1].capitalize()
                msg = (
                    f"{label} id '{ident}' is used by {key}[{first[ident]}] and {key}[{i}]; "
                    "ids must be unique."
                )
                ctx.report.add(
                    ErrorType.DUPLICATE_ID,
                    msg,
                    (key, i, "id"),
                    node_id=ident if key == "nodes" else None,
                )
            else:
                first[ident] = i
        if key == "nodes":
            ctx.node_index = first
        if key == "sources":
            entries = dict(items(ctx.obj, key))
            ctx.inline_sources = {ident: entries[i] for ident, i in first.items()}


# --- sources -----------------------------------------------------------------------------------


def _check_inline_sources(ctx: Context) -> None:
    for i, source in items(ctx.obj, "sources"):
        kind_config = _kind_and_config(source)
        if kind_config is None or kind_config[0] not in SOURCE_CONFIGS:
            continue  # a schema error already says so
        kind, config = kind_config
        base: Loc = ("sources", i, "config")
        clean = _without_literal_secrets(ctx, base, kind, config)
        _check_headers(ctx, base, config)
        _check_urls(ctx, base, config)
        _check_env_refs(ctx, base, kind, config)
        try:
            SOURCE_CONFIGS[kind].model_validate(clean)
        except ValidationError as exc:
            ctx.report.add_pydantic(exc, base, clean, ErrorType.SCHEMA)


def _without_literal_secrets(
    ctx: Context, base: Loc, kind: str, config: dict[str, Any]
) -> dict[str, Any]:
    declared = SOURCE_CONFIGS[kind].model_fields
    env_fields = [name for name in declared if name.endswith("_env")]
    clean = {}
    for key, value in config.items():
        if key in declared or not CREDENTIAL_KEY.search(key):
            clean[key] = value
            continue
        who, _ = subject(base, ctx.obj)
        instead = f"{key}_env" if f"{key}_env" in env_fields else " or ".join(env_fields)
        hint = (
            "Put it in an environment variable and name the variable instead, "
            f'e.g. "{instead}": "MY_VAR".'
            if env_fields
            else f"A {kind} source takes no credentials."
        )
        ctx.report.add(
            ErrorType.LITERAL_SECRET, f"{who} holds a credential in '{key}'. {hint}", (*base, key)
        )
    return clean


URL_FIELDS = ("base_url", "endpoint", "token_url")


def _check_urls(ctx: Context, base: Loc, config: dict[str, Any]) -> None:
    """A URL may not carry a credential either: no `user:password@`, no `?api_key=…`."""
    who, _ = subject(base, ctx.obj)
    for key in URL_FIELDS:
        url = config.get(key)
        if not isinstance(url, str):
            continue
        try:
            parts = urlsplit(url)
        except ValueError:
            continue  # the schema check reports a URL that does not parse
        in_query = [name for name, _ in parse_qsl(parts.query) if CREDENTIAL_KEY.search(name)]
        if parts.username or parts.password or in_query:
            where = "its user:password part" if parts.username else f"'{in_query[0]}'"
            msg = (
                f"{who} holds a credential in '{key}' ({where}). Keep it in an environment "
                "variable: set auth_method with its *_env fields, or api_key_env."
            )
            ctx.report.add(ErrorType.LITERAL_SECRET, msg, (*base, key))


def _check_headers(ctx: Context, base: Loc, config: dict[str, Any]) -> None:
    headers = config.get("headers")
    if not isinstance(headers, dict):
        return
    who, _ = subject(base, ctx.obj)
    for name, value in headers.items():
        secret = isinstance(value, str) and literal_secret(name, value)
        if isinstance(name, str) and (CREDENTIAL_HEADER.match(name) or secret):
            msg = (
                f"{who} sends a credential in the header '{name}'. Set auth_method "
                "(bearer, api_key, basic, oauth2_client_credentials) with its *_env fields instead."
            )
            ctx.report.add(ErrorType.LITERAL_SECRET, msg, (*base, "headers", name))


def _check_env_refs(ctx: Context, base: Loc, kind: str, config: dict[str, Any]) -> None:
    for key, value in config.items():
        if not (key.endswith("_env") and isinstance(value, str) and value):
            continue
        if not ctx.env_ok(value):
            who, _ = subject(base, ctx.obj)
            msg = (
                f"{who} names the environment variable '{value}' in '{key}', which your "
                "account may not use. Name a variable the operator granted you."
            )
            ctx.report.add(ErrorType.FORBIDDEN_SECRET_REF, msg, (*base, key))
    for use, refusal in _unbound(ctx, kind, config):
        who, _ = subject(base, ctx.obj)
        ctx.report.add(
            ErrorType.FORBIDDEN_SECRET_REF, _unbound_message(who, use, refusal), (*base, use.field)
        )


def _unbound(ctx: Context, kind: str, config: dict[str, Any]) -> list[tuple[CredentialUse, str]]:
    """The granted variables the source would send where their grant does not bind them."""
    grants = ctx.opts.grants
    if grants is None:
        return []
    uses = [use for use in grants.uses(kind, config) if ctx.env_ok(use.name)]
    return [(use, refusal) for use in uses if (refusal := grants.refusal(use)) is not None]


def _unbound_message(who: str, use: CredentialUse, refusal: str) -> str:
    return (
        f"{who} names '{use.name}' in '{use.field}', but {refusal}. Point the source where the "
        f"grant allows, or ask the operator to bind the variable to it ({use.binding()})."
    )


def _check_stored_env_refs(
    ctx: Context, base: Loc, who: str, ref: str, kind: str, config: dict[str, Any]
) -> None:
    """A stored source was checked when it was saved; a grant withdrawn since must still stop
    its variable from being read, so its `*_env` names are checked again for every spec."""
    for key, value in config.items():
        if key.endswith("_env") and isinstance(value, str) and value and not ctx.env_ok(value):
            msg = (
                f"{who} uses the stored source '{ref}', which names the environment variable "
                f"'{value}' in '{key}'; your account may no longer use it. Ask the operator to "
                "grant it again, or point the source at a variable you were granted."
            )
            ctx.report.add(ErrorType.FORBIDDEN_SECRET_REF, msg, (*base, "source"))
    for use, refusal in _unbound(ctx, kind, config):
        who_ref = f"{who} uses the stored source '{ref}', which"
        ctx.report.add(
            ErrorType.FORBIDDEN_SECRET_REF,
            _unbound_message(who_ref, use, refusal),
            (*base, "source"),
        )


# --- nodes -------------------------------------------------------------------------------------


def _check_nodes(ctx: Context) -> None:
    for i, node in items(ctx.obj, "nodes"):
        model = _node_model(ctx, i, node)
        metadata = node.get("metadata", {})
        if model is None or not isinstance(metadata, dict):
            continue
        parsed = _node_metadata(ctx, i, model, metadata)
        if parsed is None:
            continue
        ident = text(node, "id")
        if ident is not None and ctx.node_index.get(ident) == i:
            ctx.metadata_by_id[ident] = parsed
        if isinstance(parsed, HOOK_TYPES):
            _check_hooks(ctx, i, node, parsed)


def _node_model(ctx: Context, i: int, node: dict[str, Any]) -> type[BaseModel] | None:
    type_name = text(node, "type")
    if type_name is None or type_name in ctx.node_types:
        return ctx.node_types.get(type_name) if type_name else None
    names = sorted(ctx.node_types)
    msg = (
        f"{subject(('nodes', i), ctx.obj)[0]} has type '{type_name}', which is neither built "
        f"in nor a registered plugin. Known types: {known(names, 50)}."
        f"{ctx.report.hint(type_name, names)}"
    )
    ctx.report.add(ErrorType.UNKNOWN_NODE_TYPE, msg, ("nodes", i, "type"))
    return None


def _node_metadata(
    ctx: Context, i: int, model: type[BaseModel], metadata: dict[str, Any]
) -> BaseModel | None:
    try:
        return model.model_validate(metadata)
    except ValidationError as exc:
        ctx.report.add_pydantic(exc, ("nodes", i, "metadata"), metadata, ErrorType.INVALID_METADATA)
        return _without_bad_fields(model, metadata, exc)
    except Exception as exc:  # a plugin model's validator may raise anything; still a user error
        who = subject(("nodes", i), ctx.obj)[0]
        msg = f"{who}: its metadata could not be checked ({type(exc).__name__})."
        ctx.report.add(ErrorType.INVALID_METADATA, msg, ("nodes", i, "metadata"))
    return None


def _without_bad_fields(
    model: type[BaseModel], metadata: dict[str, Any], exc: ValidationError
) -> BaseModel | None:
    """Validate again without the failing fields, so templates and source still get checked."""
    bad = {
        tuple(located(err["loc"], metadata)[:1])
        for err in exc.errors(include_url=False, include_input=False)
    }
    if () in bad:
        return None  # a model-level or missing-required problem: nothing sound to fall back on
    kept = {k: v for k, v in metadata.items() if (k,) not in bad}
    try:
        return model.model_validate(kept)
    except Exception:  # still invalid without them (e.g. a required field was the bad one)
        return None


def _check_hooks(ctx: Context, i: int, node: dict[str, Any], parsed: Hooked) -> None:
    base: Loc = ("nodes", i, "metadata")
    who = subject(("nodes", i), ctx.obj)[0]
    for loc, source in parsed.templates():
        problem = template_problem(source)
        if problem:
            msg = f"{who}: the template in 'metadata.{dotted(loc)}' {problem}."
            ctx.report.add(ErrorType.INVALID_TEMPLATE, msg, (*base, *loc))
    for loc, source in parsed.expressions():
        problem = expression_problem(source)
        if problem:
            msg = (
                f"{who}: the rule in 'metadata.{dotted(loc)}' {problem}. "
                'Rules are CEL, e.g. "size(user_input) > 20".'
            )
            ctx.report.add(ErrorType.INVALID_EXPRESSION, msg, (*base, *loc))
    for loc, reason in parsed.literal_secrets():
        msg = (
            f"{who}: {reason}. Credentials live in environment variables: give the source an "
            "auth_method with its *_env fields, or take the value from the run's input state."
        )
        ctx.report.add(ErrorType.LITERAL_SECRET, msg, (*base, *loc))
    _check_node_source(ctx, base, who, text(node, "type") or "", parsed)


def _check_node_source(ctx: Context, base: Loc, who: str, type_name: str, parsed: Hooked) -> None:
    ref = parsed.source_ref()
    if ref is None:
        return
    found = ctx.source(ref)
    if found is None:
        inline = known(ctx.inline_sources) or "none"
        msg = (
            f"{who} uses the source '{ref}', which is neither in this spec's sources nor "
            f"stored for your account. Sources in this spec: {inline}."
            f"{ctx.report.hint(ref, list(ctx.inline_sources))}"
        )
        ctx.report.add(ErrorType.UNKNOWN_SOURCE, msg, (*base, "source"))
        return
    kind, config = found
    if kind not in SOURCE_CONFIGS:
        return
    if ref not in ctx.inline_sources:
        _check_stored_env_refs(ctx, base, who, ref, kind, config)
    kinds = parsed.source_kinds()
    if kinds and kind not in kinds:
        needed = ", ".join(sorted(kinds))
        msg = f"{who} ({type_name}) cannot use '{ref}', a {kind} source; it needs one of: {needed}."
        ctx.report.add(ErrorType.SOURCE_KIND_MISMATCH, msg, (*base, "source"))
        return
    for loc, problem in parsed.source_problems(config):
        ctx.report.add(
            ErrorType.INVALID_METADATA,
            f"{who}, field 'metadata.{dotted(loc)}': {problem}.",
            (*base, *loc),
        )


def _add_inline_used(ctx: Context) -> None:
    if ctx.spec is None:
        return
    used = {m.source_ref() for m in ctx.metadata_by_id.values() if isinstance(m, HOOK_TYPES)}
    for source in ctx.spec.sources:
        if source.id in used:
            ctx.used_sources.setdefault(source.id, source)


def _graph_checks(ctx: Context) -> None:
    from runtime.validation_graph import check_graph  # the graph checks need this module's Context

    check_graph(ctx)


def _dataflow_checks(ctx: Context) -> None:
    from runtime.validation_dataflow import check_db_params  # needs this module's Context too

    check_db_params(ctx)


def _workflow_checks(ctx: Context) -> None:
    from runtime.validation_workflows import check_workflows  # needs this module's Context too

    check_workflows(ctx)


def _check_limits(ctx: Context) -> None:
    limits = ctx.spec.limits if ctx.spec is not None else None
    ceiling = ctx.opts.max_steps
    if limits is not None and limits.max_steps > ceiling:
        msg = (
            f"limits.max_steps is {limits.max_steps:,}; this server allows at most {ceiling:,} "
            "node executions per run. Lower it, or bound the loop that needs more."
        )
        ctx.report.add(ErrorType.SCHEMA, msg, ("limits", "max_steps"))


CHECKS: tuple[Callable[[Context], None], ...] = (
    _check_limits,
    _check_duplicate_ids,
    _check_inline_sources,
    _check_nodes,
    _graph_checks,
    _dataflow_checks,
    _workflow_checks,
)
