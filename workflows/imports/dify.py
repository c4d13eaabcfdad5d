"""Dify DSL (the YAML an app exports: `app`, `kind: app`, `workflow.graph`) to a WorkflowSpec.

Mapped: start → input; llm → llm; if-else → router (rules in CEL); question-classifier →
router (llm); http-request → http with an inline http source; template-transform, variable-
aggregator, answer and end → aggregator. Variable references `{{#node.var#}}` become Jinja over
state keys: each converted node writes its result under its own key (`output_key`).
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workflows.imports.common import (
    Edge,
    Ids,
    LLMSources,
    Unmappable,
    as_dict,
    as_list,
    bridged,
    cel_literal,
    cel_string,
    http_source,
    sampling,
    spec_of,
    state_key,
    text,
    without_credentials,
)
from workflows.imports.report import Conversion, ImportOptions, ImportReport, NotConvertible

REFERENCE = re.compile(r"\{\{#([A-Za-z0-9_\-]+)\.([A-Za-z0-9_.\-]+)#\}\}")
NOT_MAPPED = {
    "code": "code nodes run arbitrary Python/JavaScript; AgentFlow runs no user code",
    "knowledge-retrieval": "knowledge-retrieval needs a vector store AgentFlow does not have",
    "tool": "tool nodes call Dify plugins and built-in tools AgentFlow does not have",
    "agent": "agent nodes run a tool-calling loop over Dify tools AgentFlow does not have",
    "iteration": "iteration runs a sub-graph per list item; AgentFlow has no map node",
    "iteration-start": "part of an iteration, which does not map",
    "loop": "Dify loops keep variables across passes; AgentFlow loops are bounded edges",
    "loop-start": "part of a loop, which does not map",
    "parameter-extractor": "parameter extraction relies on function calling AgentFlow lacks",
    "document-extractor": "AgentFlow takes no uploaded files to extract text from",
    "list-operator": "list filtering and sorting has no AgentFlow node",
    "assigner": "conversation variables have no AgentFlow equivalent (runs are stateless)",
}
OUTPUT_FIELDS = {"text": "", "output": "", "body": ".body", "status_code": ".status"}
OPERATORS: dict[str, Callable[[str, Any], str]] = {
    "contains": lambda x, v: f"{x}.contains({cel_string(text(v))})",
    "not contains": lambda x, v: f"!{x}.contains({cel_string(text(v))})",
    "start with": lambda x, v: f"{x}.startsWith({cel_string(text(v))})",
    "end with": lambda x, v: f"{x}.endsWith({cel_string(text(v))})",
    "is": lambda x, v: f"{x} == {cel_string(text(v))}",
    "is not": lambda x, v: f"{x} != {cel_string(text(v))}",
    "empty": lambda x, v: f"size({x}) == 0",
    "not empty": lambda x, v: f"size({x}) > 0",
    "=": lambda x, v: f"double({x}) == {cel_literal(v)}",
    "≠": lambda x, v: f"double({x}) != {cel_literal(v)}",
    ">": lambda x, v: f"double({x}) > {cel_literal(v)}",
    "<": lambda x, v: f"double({x}) < {cel_literal(v)}",
    "≥": lambda x, v: f"double({x}) >= {cel_literal(v)}",
    "≤": lambda x, v: f"double({x}) <= {cel_literal(v)}",
}


@dataclass
class _Context:
    ids: Ids
    kinds: dict[str, str]
    start: str
    sources: LLMSources
    report: ImportReport
    skipped: set[str] = field(default_factory=set)

    def expression(self, node: str, var: str) -> str | None:
        """The Jinja/CEL expression for `node.var`, or None where nothing holds it."""
        head = var.partition(".")[0]
        if node == "sys":
            return "user_input" if head == "query" else None
        if node == self.start:
            return state_key(head)
        if node not in self.kinds or node in self.skipped:
            return None
        if self.kinds[node] == "question-classifier":
            return "intent" if head == "class_name" else None
        suffix = OUTPUT_FIELDS.get(head)
        return None if suffix is None else self.ids.key(node) + suffix

    def selector(self, value: Any) -> str | None:
        parts = [text(p) for p in as_list(value)]
        return self.expression(parts[0], ".".join(parts[1:])) if len(parts) >= 2 else None

    def template(self, source: Any, where: str) -> str:
        def one(match: re.Match[str]) -> str:
            expr = self.expression(match.group(1), match.group(2))
            if expr is None:
                self.report.note(
                    f"{where}: {match.group(0)} names an output that was not imported; it "
                    "renders empty."
                )
                return ""
            return "{{ " + expr + " }}"

        return REFERENCE.sub(one, text(source))


def _start(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    names = [text(as_dict(v).get("variable")) for v in as_list(data.get("variables"))]
    required = [
        state_key(n)
        for n, v in zip(names, as_list(data.get("variables")), strict=False)
        if n and as_dict(v).get("required", True)
    ]
    return {"type": "input", "metadata": {"required": required or ["user_input"]}}


def _llm(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    model = as_dict(data.get("model"))
    provider, name = text(model.get("provider")), text(model.get("name"))
    source = ctx.sources.ref(provider, name)
    if source is None:
        raise Unmappable(
            f"provider {provider!r} has no AgentFlow source kind; name a stored "
            "source for it in source_map"
        )
    prompts = data.get("prompt_template")
    messages = as_list(prompts) if isinstance(prompts, list) else [as_dict(prompts)]
    where = f"node {raw}"
    system = [
        ctx.template(m.get("text"), where)
        for m in map(as_dict, messages)
        if m.get("role") == "system"
    ]
    user = [
        ctx.template(m.get("text"), where)
        for m in map(as_dict, messages)
        if m.get("role", "user") == "user"
    ]
    if any(as_dict(m).get("role") == "assistant" for m in messages):
        ctx.report.note(f"{where}: assistant turns of the prompt were left out.")
    metadata = {
        "source": source,
        "prompt": "\n\n".join(u for u in user if u.strip()) or "{{ user_input }}",
        "output_key": ctx.ids.key(raw),
        **sampling(as_dict(model.get("completion_params"))),
    }
    if any(s.strip() for s in system):
        metadata["system"] = "\n\n".join(system)
    return {"type": "llm", "metadata": metadata}


def _condition(ctx: _Context, condition: dict[str, Any]) -> str:
    operator = text(condition.get("comparison_operator"))
    subject = ctx.selector(condition.get("variable_selector"))
    if operator not in OPERATORS:
        raise Unmappable(f"the comparison {operator!r} has no CEL rule here")
    if subject is None:
        raise Unmappable("a condition reads a variable that was not imported")
    return OPERATORS[operator](subject, condition.get("value"))


def _if_else(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    cases = as_list(data.get("cases")) or [
        {
            "case_id": "true",
            "logical_operator": data.get("logical_operator"),
            "conditions": data.get("conditions"),
        }
    ]
    rules = []
    for case in map(as_dict, cases):
        joiner = " || " if case.get("logical_operator") == "or" else " && "
        parts = [_condition(ctx, as_dict(c)) for c in as_list(case.get("conditions"))]
        if parts:
            when = joiner.join(f"({p})" for p in parts)
            rules.append({"when": when, "intent": text(case.get("case_id")) or "true"})
    if not rules:
        raise Unmappable("the if-else has no condition")
    return {"type": "router", "metadata": {"strategy": "rules", "rules": rules, "default": "false"}}


def _classifier(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    model = as_dict(data.get("model"))
    source = ctx.sources.ref(text(model.get("provider")), text(model.get("name")))
    classes = {
        text(as_dict(c).get("id")): text(as_dict(c).get("name")) or "-"
        for c in as_list(data.get("classes"))
    }
    classes.pop("", None)
    if source is None or not classes:
        raise Unmappable("it names no classes or no OpenAI model to classify with")
    metadata: dict[str, Any] = {
        "strategy": "llm",
        "source": source,
        "intents": classes,
        "default": next(iter(classes)),
    }
    query = ctx.selector(data.get("query_variable_selector"))
    if query not in (None, "user_input"):
        metadata["prompt"] = "{{ " + str(query) + " }}"
    return {"type": "router", "metadata": metadata}


def _pairs(value: Any) -> dict[str, str]:
    """Dify writes headers and params as `key:value` lines."""
    pairs = {}
    for line in text(value).splitlines():
        key, sep, val = line.partition(":")
        if sep and key.strip():
            pairs[key.strip()] = val.strip()
    return pairs


def _http(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    where = f"node {raw}"
    # the `#` of a {{#…#}} reference is no fragment: render before splitting
    source_id, path = http_source(ctx.sources.inline, ctx.template(data.get("url"), where), raw)
    headers = without_credentials(
        {name: ctx.template(value, where) for name, value in _pairs(data.get("headers")).items()},
        ctx.report,
        where,
        source_id,
    )
    if text(as_dict(data.get("authorization")).get("type")) not in ("", "no-auth"):
        ctx.report.note(
            f"{where}: its authorization was left out (a credential never "
            f"travels in a spec); set auth_method on source {source_id!r}."
        )
    metadata: dict[str, Any] = {
        "source": source_id,
        "method": text(data.get("method")).upper() or "GET",
        "path": path,
        "output_key": ctx.ids.key(raw),
    }
    if headers:
        metadata["headers"] = headers
    params = {k: ctx.template(v, where) for k, v in _pairs(data.get("params")).items()}
    if params:
        metadata["query"] = params
    body = _body(ctx, as_dict(data.get("body")), where)
    if body is not None:
        metadata["body"] = body
    return {"type": "http", "metadata": metadata}


def _body(ctx: _Context, body: dict[str, Any], where: str) -> Any:
    kind, data = text(body.get("type")), body.get("data")
    if kind in ("", "none"):
        return None
    if isinstance(data, list):  # newer exports: [{type, key, value}]
        data = "".join(text(as_dict(d).get("value")) for d in data)
    converted = ctx.template(data, where)
    if kind == "json":
        try:
            return json.loads(converted)
        except ValueError:
            ctx.report.note(f"{where}: its JSON body is sent as one templated string.")
    return converted


def _template(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    lines = []
    for var in map(as_dict, as_list(data.get("variables"))):
        expr = ctx.selector(var.get("value_selector"))
        name = state_key(text(var.get("variable")))
        lines.append("{% set " + name + " = " + (expr or "''") + " %}")
    body = "".join(lines) + text(data.get("template"))
    return {
        "type": "aggregator",
        "metadata": {"strategy": "template", "template": body, "output_key": ctx.ids.key(raw)},
    }


def _aggregate(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    order = [ctx.selector(s) for s in as_list(data.get("variables"))]
    keys = [k for k in order if k is not None]
    if not keys or any("." in k for k in keys):
        raise Unmappable("it aggregates variables AgentFlow cannot name as plain state keys")
    return {
        "type": "aggregator",
        "metadata": {"strategy": "priority", "order": keys, "output_key": ctx.ids.key(raw)},
    }


def _end(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    outputs = [as_dict(o) for o in as_list(data.get("outputs"))]
    parts = [(text(o.get("variable")), ctx.selector(o.get("value_selector"))) for o in outputs]
    if len(parts) == 1:
        template = "{{ " + (parts[0][1] or "''") + " }}"
    else:
        template = "\n".join(f"{n}: " + "{{ " + (e or "''") + " }}" for n, e in parts)
    return {"type": "aggregator", "metadata": {"strategy": "template", "template": template}}


def _answer(ctx: _Context, data: dict[str, Any], raw: str) -> dict[str, Any]:
    template = ctx.template(data.get("answer"), f"node {raw}")
    return {"type": "aggregator", "metadata": {"strategy": "template", "template": template}}


CONVERTERS: dict[str, Callable[[_Context, dict[str, Any], str], dict[str, Any]]] = {
    "start": _start,
    "llm": _llm,
    "if-else": _if_else,
    "question-classifier": _classifier,
    "http-request": _http,
    "template-transform": _template,
    "variable-aggregator": _aggregate,
    "variable-assigner": _aggregate,  # what older exports call the aggregator
    "end": _end,
    "answer": _answer,
}


def is_dify(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and isinstance(document.get("app"), dict)
        and (document.get("kind") == "app" or "workflow" in document)
    )


def _graph(document: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    graph = as_dict(as_dict(document.get("workflow")).get("graph"))
    nodes = [as_dict(n) for n in as_list(graph.get("nodes"))]
    edges = [as_dict(e) for e in as_list(graph.get("edges"))]
    if not nodes:
        raise NotConvertible(
            "/workflow/graph/nodes",
            "A Dify workflow export has its nodes in "
            "workflow.graph.nodes; chat apps without a workflow do not import.",
        )
    return [n for n in nodes if as_dict(n.get("data")).get("type")], edges


def convert(document: dict[str, Any], options: ImportOptions) -> Conversion:
    """Convert a parsed Dify DSL document.

    Raises:
        NotConvertible: it has no workflow graph or no start node.
    """
    nodes, edges = _graph(document)
    report, ids = ImportReport(), Ids()
    kinds = {text(n.get("id")): text(as_dict(n.get("data")).get("type")) for n in nodes}
    start = next((i for i, k in kinds.items() if k == "start"), None)
    if start is None:
        raise NotConvertible("/workflow/graph/nodes", "The Dify graph has no start node.")
    for raw, kind in kinds.items():
        ids.add(raw, kind)
    ctx = _Context(ids, kinds, start, LLMSources(options, report), report)
    ctx.skipped = {i for i, k in kinds.items() if k not in CONVERTERS}
    converted: list[dict[str, Any]] = []
    for node in nodes:  # first pass decides what is skipped, so references can say so
        raw, data = text(node.get("id")), as_dict(node.get("data"))
        if raw in ctx.skipped or data.get("isInIteration") or data.get("isInLoop"):
            ctx.skipped.add(raw)
            continue
        try:
            converted.append({"id": ids.nodes[raw], **CONVERTERS[kinds[raw]](ctx, data, raw)})
        except Unmappable as exc:
            ctx.skipped.add(raw)
            report.skip(raw, kinds[raw], str(exc))
    for raw in kinds:
        if raw in ctx.skipped and not any(s["id"] == raw for s in report.not_mapped):
            report.skip(raw, kinds[raw], NOT_MAPPED.get(kinds[raw], _unknown(kinds[raw])))
    for node in converted:
        raw = next(r for r, i in ids.nodes.items() if i == node["id"])
        report.map(raw, kinds[raw], node["id"], node["type"])
    kept = set(kinds) - ctx.skipped
    routers = {r for r in kept if kinds[r] in ("if-else", "question-classifier")}
    graph: list[Edge] = [
        (
            text(e.get("source")),
            text(e.get("target")),
            text(e.get("sourceHandle")) or None if text(e.get("source")) in routers else None,
        )
        for e in edges
        if text(e.get("source")) in kinds and text(e.get("target")) in kinds
    ]
    app = as_dict(document.get("app"))
    spec = spec_of(
        name=text(app.get("name")),
        description=text(app.get("description")),
        start=start,
        nodes=converted,
        edges=bridged(graph, kept),
        ids=ids,
        sources=ctx.sources.sources(),
    )
    return Conversion(spec, report)


def _unknown(kind: str) -> str:
    return f"no AgentFlow node type does what Dify's {kind!r} node does"
