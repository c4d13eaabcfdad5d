"""Flowise Agentflow V2 exports (nodes named `startAgentflow`, `llmAgentflow`, …) to a
WorkflowSpec. Unlike a chatflow, edges are the order of execution, as in AgentFlow.

Mapped: start → input; llm → llm; condition → router (rules in CEL; output `n` of the node
is intent `n`, the last one is the else branch, the default); http → http with an inline http
source; directReply → aggregator. References `{{ question }}`, `{{ llmAgentflow_0 }}` and
`{{ $flow.state.x }}` become `{{ user_input }}`, that node's key and `x`.
"""

import re
from collections.abc import Callable
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

NOT_MAPPED = {
    "customFunctionAgentflow": "custom functions run JavaScript; AgentFlow runs no user code",
    "agentAgentflow": "agents run a tool-calling loop AgentFlow does not have",
    "toolAgentflow": "tools are Flowise components AgentFlow does not have",
    "retrieverAgentflow": "retrieval needs a vector store AgentFlow does not have",
    "humanInputAgentflow": "not converted: rebuild it as an AgentFlow approval node",
    "loopAgentflow": "Flowise loops jump back to any node; AgentFlow loops are bounded edges",
    "iterationAgentflow": "iteration runs a sub-flow per item; AgentFlow has no map node",
    "executeFlowAgentflow": "it runs another Flowise flow; import that flow and call it",
    "conditionAgentAgentflow": "an LLM-decided condition with scenarios; not converted yet",
}
MODELS = {
    "chatOpenAI": "openai",
    "azureChatOpenAI": "azure_openai",
    "chatAnthropic": "anthropic",
    "chatGoogleGenerativeAI": "google",
}
REFERENCE = re.compile(r"\{\{\s*([$A-Za-z0-9_.\-]+)\s*\}\}")
TAG = re.compile(r"<[^>]{0,200}>")
OPERATORS: dict[str, Callable[[str, Any], str]] = {
    "contains": lambda x, v: f"{x}.contains({cel_string(text(v))})",
    "notContains": lambda x, v: f"!{x}.contains({cel_string(text(v))})",
    "startsWith": lambda x, v: f"{x}.startsWith({cel_string(text(v))})",
    "endsWith": lambda x, v: f"{x}.endsWith({cel_string(text(v))})",
    "isEmpty": lambda x, v: f"size({x}) == 0",
    "notEmpty": lambda x, v: f"size({x}) > 0",
    "larger": lambda x, v: f"double({x}) > {cel_literal(v)}",
    "largerEqual": lambda x, v: f"double({x}) >= {cel_literal(v)}",
    "smaller": lambda x, v: f"double({x}) < {cel_literal(v)}",
    "smallerEqual": lambda x, v: f"double({x}) <= {cel_literal(v)}",
}


def is_agentflow(document: dict[str, Any]) -> bool:
    names = (text(as_dict(as_dict(n).get("data")).get("name")) for n in document["nodes"])
    return any(name.endswith("Agentflow") for name in names)


class _Flow:
    def __init__(self, nodes: dict[str, dict[str, Any]], options: ImportOptions) -> None:
        self.nodes, self.report, self.ids = nodes, ImportReport(), Ids()
        self.sources = LLMSources(options, self.report)
        self.skipped: set[str] = set()

    def kind(self, raw: str) -> str:
        return text(self.nodes[raw].get("name"))

    def expression(self, ref: str) -> str | None:
        if ref == "question":
            return "user_input"
        if ref.startswith(("$flow.state.", "$form.")):
            return state_key(ref.rsplit(".", 1)[-1])
        if ref not in self.nodes or ref in self.skipped:
            return None
        suffix = ".body" if self.kind(ref) == "httpAgentflow" else ""
        return self.ids.key(ref) + suffix

    def template(self, value: Any, where: str) -> str:
        def one(match: re.Match[str]) -> str:
            expr = self.expression(match.group(1))
            if expr is None:
                self.report.note(f"{where}: {match.group(0)} was not imported; it renders empty.")
                return ""
            return "{{ " + expr + " }}"

        plain = TAG.sub("", text(value)).replace("&nbsp;", " ")  # the editor stores HTML
        return REFERENCE.sub(one, plain).strip()

    def subject(self, value: Any) -> str:
        found = REFERENCE.fullmatch(TAG.sub("", text(value)).strip())
        expr = self.expression(found.group(1)) if found else None
        if expr is None:
            raise Unmappable("a condition compares something other than a variable")
        return expr


def _start(flow: _Flow, inputs: dict[str, Any], raw: str) -> dict[str, Any]:
    fields = [
        state_key(text(as_dict(f).get("name"))) for f in as_list(inputs.get("formInputTypes"))
    ]
    form = inputs.get("startInputType") == "formInput" and any(fields)
    return {
        "type": "input",
        "metadata": {"required": [f for f in fields if f] if form else ["user_input"]},
    }


def _llm(flow: _Flow, inputs: dict[str, Any], raw: str) -> dict[str, Any]:
    config = as_dict(inputs.get("llmModelConfig"))
    provider = MODELS.get(text(inputs.get("llmModel")), text(inputs.get("llmModel")))
    model = text(config.get("modelName") or config.get("model")) or "gpt-4o-mini"
    source = flow.sources.ref(provider, model)
    if source is None:
        raise Unmappable(f"model {inputs.get('llmModel')!r} has no AgentFlow source kind")
    where = f"node {raw}"
    messages = [as_dict(m) for m in as_list(inputs.get("llmMessages"))]
    system = [flow.template(m.get("content"), where) for m in messages if m.get("role") == "system"]
    user = [flow.template(m.get("content"), where) for m in messages if m.get("role") == "user"]
    if text(inputs.get("llmUserMessage")).strip():
        user.append(flow.template(inputs.get("llmUserMessage"), where))
    metadata: dict[str, Any] = {
        "source": source,
        "prompt": "\n\n".join(u for u in user if u) or "{{ user_input }}",
        "output_key": flow.ids.key(raw),
        **sampling(config),
    }
    if any(system):
        metadata["system"] = "\n\n".join(s for s in system if s)
    return {"type": "llm", "metadata": metadata}


def _condition(flow: _Flow, inputs: dict[str, Any], raw: str) -> dict[str, Any]:
    rules = []
    for n, cond in enumerate(map(as_dict, as_list(inputs.get("conditions")))):
        operation, subject = text(cond.get("operation")), flow.subject(cond.get("value1"))
        value = TAG.sub("", text(cond.get("value2")))
        if operation in OPERATORS:
            when = OPERATORS[operation](subject, value)
        elif operation in ("equal", "notEqual"):
            literal = cel_literal(value) if cond.get("type") == "number" else cel_string(value)
            subject = f"double({subject})" if cond.get("type") == "number" else subject
            when = f"{subject} {'==' if operation == 'equal' else '!='} {literal}"
        else:
            raise Unmappable(f"the operation {operation!r} has no CEL rule here")
        rules.append({"when": when, "intent": str(n)})
    if not rules:
        raise Unmappable("the condition has no conditions")
    return {
        "type": "router",
        "metadata": {"strategy": "rules", "rules": rules, "default": str(len(rules))},
    }


def _http(flow: _Flow, inputs: dict[str, Any], raw: str) -> dict[str, Any]:
    where = f"node {raw}"
    source_id, path = http_source(flow.sources.inline, flow.template(inputs.get("url"), where), raw)
    pairs = {
        text(as_dict(h).get("key")): flow.template(as_dict(h).get("value"), where)
        for h in as_list(inputs.get("headers"))
    }
    query = {
        text(as_dict(h).get("key")): flow.template(as_dict(h).get("value"), where)
        for h in as_list(inputs.get("queryParams"))
    }
    metadata: dict[str, Any] = {
        "source": source_id,
        "method": text(inputs.get("method")).upper() or "GET",
        "path": path,
        "output_key": flow.ids.key(raw),
    }
    headers = without_credentials(pairs, flow.report, where, source_id)
    if headers:
        metadata["headers"] = headers
    if any(query):
        metadata["query"] = {k: v for k, v in query.items() if k}
    if text(inputs.get("body")).strip():
        metadata["body"] = flow.template(inputs.get("body"), where)
    return {"type": "http", "metadata": metadata}


def _reply(flow: _Flow, inputs: dict[str, Any], raw: str) -> dict[str, Any]:
    template = flow.template(inputs.get("directReplyMessage"), f"node {raw}")
    return {"type": "aggregator", "metadata": {"strategy": "template", "template": template}}


CONVERTERS: dict[str, Callable[[_Flow, dict[str, Any], str], dict[str, Any]]] = {
    "startAgentflow": _start,
    "llmAgentflow": _llm,
    "conditionAgentflow": _condition,
    "httpAgentflow": _http,
    "directReplyAgentflow": _reply,
}


def _handle(value: Any) -> str | None:
    """`conditionAgentflow_0-output-1` → `1`."""
    found = re.search(r"-output-(\d+)$", text(value))
    return found.group(1) if found else None


def convert(document: dict[str, Any], options: ImportOptions) -> Conversion:
    """Convert a parsed Flowise Agentflow V2 export.

    Raises:
        NotConvertible: it has no start node.
    """
    nodes = {
        text(as_dict(n).get("id")): as_dict(as_dict(n).get("data"))
        for n in as_list(document.get("nodes"))
    }
    nodes = {k: v for k, v in nodes.items() if k and v.get("name") != "stickyNoteAgentflow"}
    flow = _Flow(nodes, options)
    start = next((r for r in nodes if flow.kind(r) == "startAgentflow"), None)
    if start is None:
        raise NotConvertible("/nodes", "An Agentflow V2 export has a startAgentflow node.")
    for raw in nodes:
        flow.ids.add(raw, flow.kind(raw).removesuffix("Agentflow"))
    flow.skipped = {r for r in nodes if flow.kind(r) not in CONVERTERS}
    converted = []
    for raw, data in nodes.items():
        if raw in flow.skipped:
            continue
        try:
            node = CONVERTERS[flow.kind(raw)](flow, as_dict(data.get("inputs")), raw)
        except Unmappable as exc:
            flow.skipped.add(raw)
            flow.report.skip(raw, flow.kind(raw), str(exc))
            continue
        converted.append({"id": flow.ids.nodes[raw], **node})
        flow.report.map(raw, flow.kind(raw), flow.ids.nodes[raw], node["type"])
    for raw in sorted(flow.skipped - {s["id"] for s in flow.report.not_mapped}):
        reason = NOT_MAPPED.get(
            flow.kind(raw), f"no AgentFlow node does what {flow.kind(raw)} does"
        )
        flow.report.skip(raw, flow.kind(raw), reason)
    kept = set(nodes) - flow.skipped
    routers = {r for r in kept if flow.kind(r) == "conditionAgentflow"}
    graph: list[Edge] = [
        (
            text(e.get("source")),
            text(e.get("target")),
            _handle(e.get("sourceHandle")) if text(e.get("source")) in routers else None,
        )
        for e in map(as_dict, as_list(document.get("edges")))
        if text(e.get("source")) in nodes and text(e.get("target")) in nodes
    ]
    name = text(document.get("name")) or "flowise-agentflow"
    spec = spec_of(
        name=name,
        description=text(document.get("description")),
        start=start,
        nodes=converted,
        edges=bridged(graph, kept),
        ids=flow.ids,
        sources=flow.sources.sources(),
    )
    return Conversion(spec, flow.report)
