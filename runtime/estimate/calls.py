"""What each provider-calling node would send: its prompt rendered against the initial state,
counted as the provider counts it, with its bound on the answer and its price.

`prompt_tokens` renders the prompt from the scene's floor (what earlier nodes write left out),
`prompt_tokens_max` from its ceiling (their answers at their bounds): see `scene`. A node lists
in `unknown_inputs` each key earlier nodes write that its prompt reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from runtime.errors import NodeError
from runtime.estimate.scene import Prior, Scene, priors, scene, unfold
from runtime.estimate.tokenizer import Tokenizer, chat_tokens, text_tokens, tokenizer_for
from runtime.node_metadata import (
    ImageMetadata,
    KeywordRouter,
    LLMMetadata,
    LLMRouter,
    RulesRouter,
    SemanticRouter,
)
from runtime.nodes.base import Node
from runtime.nodes.image import IMAGE_TOKENS
from runtime.nodes.llm import DEFAULT_COMPLETION_TOKENS
from runtime.nodes.router import LLM_ROUTER_PROMPT
from runtime.pricing import PriceTable
from runtime.sandbox.templates import render_template
from runtime.spec import SourceSpec
from runtime.state import initial_state
from runtime.validation import ValidationResult

ROUTER_MAX_TOKENS = 20
"""The answer an llm router asks for (runtime/nodes/router.py: one intent's name)."""

CallKind = Literal["chat", "embeddings", "image"]
Registry = Mapping[str, type[Node] | Mapping[str, type[Node]]]


@dataclass(frozen=True)
class Call:
    """One provider call a node makes on a pass."""

    node_id: str
    call: CallKind
    source: SourceSpec
    model: str
    tokenizer: Tokenizer
    prompt_tokens: int
    prompt_tokens_max: int
    completion_tokens_max: int
    unknown_inputs: tuple[str, ...] = ()
    rendered: bool = True
    """False when a template failed to render: its source text was counted instead."""


def inner(meta: Any) -> Any:
    """A strategy model's own metadata (routers and aggregators wrap theirs in a RootModel)."""
    return getattr(meta, "root", meta)


def calls_of(
    validated: ValidationResult, values: Mapping[str, Any], registry: Registry
) -> list[Call]:
    """The calls of every node that calls a language model, in spec order."""
    assert validated.spec is not None
    spec = validated.spec
    metas = {node.id: inner(validated.metadata[node.id]) for node in spec.nodes}
    bounds = {
        node_id: _completion_bound(meta, validated.sources)
        for node_id, meta in metas.items()
        if _calls_chat(meta)
    }
    # What stands in for an answer: an llm node's text. A router writes an intent's name.
    answers = {n: bound for n, bound in bounds.items() if isinstance(metas[n], LLMMetadata)}
    node_ids = [n.id for n in spec.nodes]
    own = {
        n.id: _own(index, _written(n.type, metas[n.id], registry), metas[n.id], answers.get(n.id))
        for index, n in enumerate(spec.nodes)
    }
    before = priors(node_ids, [(e.from_, e.to) for e in spec.edges], own)
    start = initial_state(values)
    found = []
    for node in spec.nodes:
        meta = metas[node.id]
        if _calls_chat(meta) or isinstance(meta, SemanticRouter | ImageMetadata):
            reads = any("outputs" in text for text in _templates(meta))
            seen = scene(start, before[node.id], node_ids, answers, outputs_read=reads)
            found.append(_call(node.id, meta, validated.sources, seen, bounds.get(node.id, 0)))
    return found


def _own(index: int, keys: frozenset[str], meta: Any, bound: int | None) -> Prior:
    """What a node itself writes, as the nodes after it see it."""
    produced = getattr(meta, "produced_intents", lambda: None)() or ()
    intent = max(produced, key=len, default="") if "intent" in keys else ""
    return Prior(1 << index, dict.fromkeys(keys, bound or 0), intent)


def _calls_chat(meta: Any) -> bool:
    return isinstance(meta, LLMMetadata | LLMRouter)


def _completion_bound(meta: Any, sources: Mapping[str, SourceSpec]) -> int:
    if isinstance(meta, LLMRouter):
        return ROUTER_MAX_TOKENS
    config = sources[meta.source].config
    return int(meta.max_tokens or config.get("max_tokens") or DEFAULT_COMPLETION_TOKENS)


def _written(node_type: str, meta: Any, registry: Registry) -> frozenset[str]:
    entry = registry.get(node_type)
    cls = entry.get(getattr(meta, "strategy", "")) if isinstance(entry, Mapping) else entry
    result_key = getattr(cls, "result_key", None)
    keys = {key for key in (getattr(meta, "output_key", None) or result_key,) if key}
    if isinstance(meta, KeywordRouter | RulesRouter | LLMRouter | SemanticRouter):
        keys.add("intent")
    written = getattr(meta, "written_keys", None)
    return frozenset(keys | set(written() if written else ()))


def _templates(meta: Any) -> Iterator[str]:
    for name in ("system", "prompt"):
        if isinstance(value := getattr(meta, name, None), str):
            yield value


def _unknown_inputs(meta: Any, unknown: frozenset[str]) -> tuple[str, ...]:
    texts = list(_templates(meta))
    if isinstance(meta, LLMRouter) and not meta.prompt:
        texts.append("text_result")
    if isinstance(meta, SemanticRouter):
        texts.append("user_input")
    read = {key for key in unknown for t in texts if re.search(rf"\b{re.escape(key)}\b", t)}
    if any(re.search(r"\boutputs\b", t) for t in texts):
        read.add("outputs")
    return tuple(sorted(read))


def _call(
    node_id: str,
    meta: Any,
    sources: Mapping[str, SourceSpec],
    scene: Scene,
    bound: int,
) -> Call:
    source = sources[meta.source]
    model = str(source.config.get("model_name") or source.config.get("deployment") or "")
    tokenizer = tokenizer_for(source.kind, model)
    if isinstance(meta, SemanticRouter):
        floor = _embedded_tokens(meta, scene.floor, tokenizer)
        ceiling = _embedded_tokens(meta, scene.ceiling, tokenizer)
        return Call(node_id, "embeddings", source, model, tokenizer, floor, ceiling, 0)
    if isinstance(meta, ImageMetadata):
        return _image_call(node_id, meta, source, model, scene)
    floor_messages, rendered = _messages(node_id, meta, scene.floor)
    ceiling_messages, rendered_too = _messages(node_id, meta, scene.ceiling)
    unfolded = [(role, *unfold(content)) for role, content in ceiling_messages]
    ceiling = chat_tokens(tokenizer, [(role, bare) for role, bare, _ in unfolded])
    return Call(
        node_id,
        "chat",
        source,
        model,
        tokenizer,
        chat_tokens(tokenizer, floor_messages),
        ceiling + sum(extra for _, _, extra in unfolded),
        bound,
        _unknown_inputs(meta, scene.unknown),
        rendered and rendered_too,
    )


def _image_call(
    node_id: str, meta: ImageMetadata, source: SourceSpec, model: str, scene: Scene
) -> Call:
    """An image's prompt, and the most output tokens one image bills (image.py IMAGE_TOKENS)."""
    tokenizer = tokenizer_for(source.kind, model)
    floor, ok = _render(meta.prompt, scene.floor, node_id)
    rendered, ok_too = _render(meta.prompt, scene.ceiling, node_id)
    ceiling, extra = unfold(rendered)
    return Call(
        node_id,
        "image",
        source,
        model,
        tokenizer,
        text_tokens(tokenizer, floor),
        text_tokens(tokenizer, ceiling) + extra,
        IMAGE_TOKENS,
        _unknown_inputs(meta, scene.unknown),
        ok and ok_too,
    )


def _embedded_tokens(meta: SemanticRouter, state: Mapping[str, Any], tokenizer: Tokenizer) -> int:
    """The first run embeds the message and every example (later runs of the same compiled
    graph only the message): the estimate is a first run's."""
    message, extra = unfold(str(state.get("user_input") or ""))
    texts = [message, *(example for examples in meta.examples.values() for example in examples)]
    return extra + sum(text_tokens(tokenizer, text) for text in texts)


def _messages(
    node_id: str, meta: Any, state: Mapping[str, Any]
) -> tuple[list[tuple[str, str]], bool]:
    """The (role, content) messages the node sends from `state`, as its `run` builds them."""
    if isinstance(meta, LLMRouter):
        choices = "\n".join(f"- {name}: {text}" for name, text in meta.intents.items())
        fallback = str(state.get("text_result") or state.get("user_input") or "")
        user, ok = _render(meta.prompt, state, node_id) if meta.prompt else (fallback, True)
        return [("system", LLM_ROUTER_PROMPT.format(choices=choices)), ("user", user)], ok
    messages, ok = [], True
    if meta.system:
        system, ok = _render(meta.system, state, node_id)
        messages.append(("system", system))
    prompt, prompt_ok = _render(meta.prompt, state, node_id)
    messages.append(("user", prompt))
    return messages, ok and prompt_ok


def _render(template: str, state: Mapping[str, Any], node_id: str) -> tuple[str, bool]:
    try:
        return render_template(template, state, node_id=node_id), True
    except NodeError:  # a bad operand, a cap: the run would fail here; count the source text
        return template, False


def cost_of(call: Call, prices: PriceTable, *, upper: bool) -> float:
    prompt = call.prompt_tokens_max if upper else call.prompt_tokens
    return prices.cost(call.model, prompt, call.completion_tokens_max)
