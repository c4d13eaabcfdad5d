"""Flowise chatflow exports (`{"nodes": [...], "edges": [...]}`) to a WorkflowSpec.

A chatflow is a LangChain object graph: a chat model and a prompt template feed a chain. Each
chain (llmChain, conversationChain) becomes an llm node reading its model (a source) and its
prompt; chains run in the order their outputs feed each other, after an input node, and the
last ones' results are the final output. Prompt variables `{var}` become `{{ var }}`; those
bound to `{{question}}` become `{{ user_input }}`, those bound to another chain's output read it.
"""

import json
import re
from typing import Any

from workflows.imports import flowise_v2
from workflows.imports.common import (
    Edge,
    Ids,
    LLMSources,
    as_dict,
    as_list,
    sampling,
    spec_of,
    state_key,
    text,
)
from workflows.imports.report import Conversion, ImportOptions, ImportReport, NotConvertible

CHAINS = ("llmChain", "conversationChain")
PROMPTS = ("promptTemplate", "chatPromptTemplate")
MODELS = {
    "chatOpenAI": "openai",
    "openAI": "openai",
    "azureChatOpenAI": "azure_openai",
    "chatAnthropic": "anthropic",
    "chatGoogleGenerativeAI": "google",
}
REASONS = {
    "Custom Function": "custom functions run JavaScript; AgentFlow runs no user code",
    "Utilities": "utility nodes run JavaScript or hold variables; AgentFlow runs no user code",
    "Vector Stores": "vector stores need a vector database AgentFlow does not have",
    "Retrievers": "retrievers need a vector store AgentFlow does not have",
    "Embeddings": "embeddings feed a vector store AgentFlow does not have",
    "Document Loaders": "AgentFlow loads no documents into a store",
    "Text Splitters": "AgentFlow loads no documents into a store",
    "Memory": "runs are stateless; pass earlier turns in the initial state instead",
    "Tools": "tools are called by agents, which AgentFlow does not have",
    "Agents": "agents run a tool-calling loop AgentFlow does not have",
    "Output Parsers": "output parsers are not needed: use response_format json on the llm node",
}
BY_NAME = {
    "customFunction": "custom functions run JavaScript; AgentFlow runs no user code",
    "ifElseFunction": "if/else functions run JavaScript; AgentFlow runs no user code",
}
INSTANCE = re.compile(r"^\{\{([A-Za-z0-9_\-]+)\.data\.instance\}\}$")
VARIABLE = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
QUESTION = re.compile(r"\{\{\s*question\s*\}\}")


def is_flowise(document: Any) -> bool:
    nodes = as_list(as_dict(document).get("nodes"))
    return (
        bool(nodes)
        and all(isinstance(as_dict(n).get("data"), dict) for n in nodes)
        and ("edges" in as_dict(document))
    )


def _instance(value: Any) -> str | None:
    """The node id in `{{chatOpenAI_0.data.instance}}`."""
    found = INSTANCE.match(text(value).strip())
    return found.group(1) if found else None


def _values(value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value.strip():
        try:
            return as_dict(json.loads(value))
        except ValueError:
            return {}
    return as_dict(value)


class _Chatflow:
    def __init__(self, document: dict[str, Any], options: ImportOptions) -> None:
        self.nodes = {
            text(as_dict(n).get("id")): as_dict(as_dict(n).get("data"))
            for n in as_list(document.get("nodes"))
        }
        self.nodes.pop("", None)
        self.report = ImportReport()
        self.ids = Ids()
        self.sources = LLMSources(options, self.report)
        self.used: dict[str, str] = {}
        self.after: dict[str, set[str]] = {}

    def name(self, raw: str) -> str:
        return text(self.nodes[raw].get("name"))

    def template(self, template: str, values: dict[str, Any], chain: str) -> str:
        """Prompt variables to Jinja: a value names the question, another chain, or text."""

        def one(match: re.Match[str]) -> str:
            var = match.group(1)
            bound = text(values.get(var)).strip()
            other = _instance(bound)
            if other is not None and other in self.nodes and self.name(other) in CHAINS:
                self.after.setdefault(chain, set()).add(other)
                return "{{ " + state_key(other) + " }}"
            if other is not None:
                self.report.note(
                    f"{chain}: {{{var}}} reads {other}, which was not imported; it renders empty."
                )
                return ""
            if QUESTION.fullmatch(bound) or (not bound and var == "question"):
                return "{{ user_input }}"
            if bound:
                return QUESTION.sub("{{ user_input }}", bound)
            return "{{ " + var + " }}"

        return QUESTION.sub("{{ user_input }}", VARIABLE.sub(one, template))

    def prompt(self, chain: str, inputs: dict[str, Any]) -> tuple[str, str | None]:
        """(prompt, system) of a chain, from its prompt template or its own fields."""
        ref = _instance(inputs.get("prompt")) or _instance(inputs.get("chatPromptTemplate"))
        data = as_dict(self.nodes.get(ref or "")) if ref else {}
        if ref:
            self.used[ref] = chain
        fields = as_dict(data.get("inputs")) or inputs
        values = _values(fields.get("promptValues"))
        human = text(fields.get("template") or fields.get("humanMessagePrompt"))
        system = text(fields.get("systemMessagePrompt"))
        prompt = self.template(human, values, chain) if human.strip() else "{{ user_input }}"
        return prompt, self.template(system, values, chain) if system.strip() else None

    def model(self, chain: str, inputs: dict[str, Any]) -> str | None:
        ref = _instance(inputs.get("model"))
        if ref is None or ref not in self.nodes:
            return None
        self.used[ref] = chain
        fields = as_dict(self.nodes[ref].get("inputs"))
        model = text(fields.get("modelName") or fields.get("azureOpenAIApiDeploymentName"))
        provider = MODELS.get(self.name(ref), self.name(ref))
        return self.sources.ref(provider, model or "gpt-4o-mini")

    def chain(self, raw: str) -> dict[str, Any] | None:
        inputs = as_dict(self.nodes[raw].get("inputs"))
        source = self.model(raw, inputs)
        if source is None:
            self.report.skip(
                raw,
                self.name(raw),
                "its chat model is not one AgentFlow has a "
                "source for (OpenAI, Azure OpenAI, Anthropic, Google); name a "
                "stored source for it in source_map",
            )
            return None
        prompt, system = self.prompt(raw, inputs)
        model_ref = _instance(inputs.get("model")) or ""
        metadata: dict[str, Any] = {
            "source": source,
            "prompt": prompt,
            "output_key": state_key(raw),
            **sampling(as_dict(self.nodes.get(model_ref, {}).get("inputs"))),
        }
        if system:
            metadata["system"] = system
        return {"id": self.ids.add(raw, "llm"), "type": "llm", "metadata": metadata}


def convert(document: dict[str, Any], options: ImportOptions) -> Conversion:
    """Convert a parsed Flowise chatflow export.

    Raises:
        NotConvertible: it has no nodes.
    """
    if flowise_v2.is_agentflow(document):
        return flowise_v2.convert(document, options)
    flow = _Chatflow(document, options)
    if not flow.nodes:
        raise NotConvertible("/nodes", "A Flowise export lists its nodes in `nodes`.")
    start = "__input"
    flow.ids.nodes[start] = "input"
    nodes: list[dict[str, Any]] = [{"id": "input", "type": "input"}]
    chains = [raw for raw in flow.nodes if flow.name(raw) in CHAINS]
    for raw in chains:
        node = flow.chain(raw)
        if node is not None:
            nodes.append(node)
            flow.report.map(raw, flow.name(raw), node["id"], "llm")
    made = {raw for raw in chains if raw in flow.ids.nodes}
    edges: list[Edge] = []
    for raw in made:
        before = flow.after.get(raw, set()) & made
        edges += [(b, raw, None) for b in sorted(before)] or [(start, raw, None)]
    ends = sorted(made - {b for raw in made for b in flow.after.get(raw, set())})
    if ends:
        flow.ids.nodes["__answer"] = "answer"
        template = "\n\n".join("{{ " + state_key(raw) + " }}" for raw in ends)
        nodes.append(
            {
                "id": "answer",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": template},
            }
        )
        edges += [(raw, "__answer", None) for raw in ends]
    _report_the_rest(flow, made)
    name = text(document.get("name")) or "flowise-chatflow"
    spec = spec_of(
        name=name,
        description=text(document.get("description")),
        start=start,
        nodes=nodes,
        edges=edges,
        ids=flow.ids,
        sources=flow.sources.sources(),
    )
    return Conversion(spec, flow.report)


def _report_the_rest(flow: _Chatflow, made: set[str]) -> None:
    for raw, data in flow.nodes.items():
        kind = flow.name(raw)
        if raw in made or kind in CHAINS or kind == "stickyNote":
            continue
        chain = flow.used.get(raw)
        if chain in made:
            what = "prompt" if kind in PROMPTS else "source"
            flow.report.map(raw, kind, flow.ids.nodes[chain], what)
            continue
        if chain is not None:
            flow.report.skip(raw, kind, f"it feeds {chain}, which did not map")
            continue
        category = text(data.get("category"))
        reason = (
            BY_NAME.get(kind)
            or REASONS.get(category)
            or (f"no AgentFlow node does what Flowise's {kind} does")
        )
        flow.report.skip(raw, kind, reason)
