"""Routers set `intent`; the edges out of them are chosen by it (SPEC §2 `router`)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

from runtime.budget import Spend, spending, text_tokens
from runtime.context import RunContext
from runtime.node_input import chat_input
from runtime.node_metadata import KeywordRouter, LLMRouter, RulesRouter, SemanticRouter
from runtime.nodes.base import Node, NodeOutput, State
from runtime.nodes.llm import chat_cost, chat_estimate
from runtime.providers._errors import malformed_error
from runtime.providers.base import ChatMessage, ChatRequest, ChatResult, check_text
from runtime.replay import chat_answer, chat_payload, replayed_details, request_digest
from runtime.sandbox.expressions import evaluate_rule
from runtime.telemetry import provider_call

LLM_ROUTER_PROMPT = (
    "Classify the user's message into exactly one of these intents:\n{choices}\n"
    "Answer with the intent's name alone, nothing else."
)


def _routed(intent: str, **details: object) -> NodeOutput:
    return NodeOutput(
        result=intent, updates={"intent": intent}, details={"intent": intent, **details}
    )


@lru_cache(maxsize=4096)
def _word(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


class KeywordRouterNode(Node):
    """Whole-word, case-insensitive; the first route (in spec order) with a match wins."""

    kind = "router"
    meta: KeywordRouter

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        text = str(state.get("user_input") or "")
        for intent, words in self.meta.routes.items():
            for word in words:
                if _word(word).search(text):
                    return _routed(intent, matched=word)
        return _routed(self.meta.default)


class RulesRouterNode(Node):
    """CEL rules over the state, in order; the first that holds wins."""

    kind = "router"
    meta: RulesRouter

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        return await self.evaluate(lambda: self._route(state))

    def _route(self, state: State) -> NodeOutput:
        for index, rule in enumerate(self.meta.rules):
            if evaluate_rule(rule.when, state, node_id=self.node_id):
                return _routed(rule.intent, rule=index)
        return _routed(self.meta.default)


class LLMRouterNode(Node):
    """Asks a model to name one intent; an answer naming none falls back to `default`."""

    kind = "router"
    meta: LLMRouter

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        choices = "\n".join(f"- {name}: {text}" for name, text in self.meta.intents.items())
        system = LLM_ROUTER_PROMPT.format(choices=choices)
        user = (
            await self.evaluate(lambda: self.render(prompt, state))
            if (prompt := self.meta.prompt)
            else str(state.get("text_result") or state.get("user_input") or "")
        )
        check_text(system, f"Node '{self.node_id}': an intent's description")
        check_text(user, f"Node '{self.node_id}': the text to classify")
        request = ChatRequest(
            messages=(ChatMessage("system", system), ChatMessage("user", user)),
            temperature=0,
            max_tokens=20,
        )
        ctx.note_input(self.node_id, chat_input(request.messages))
        digest = request_digest("chat", self.source(), request)
        recorded = ctx.recordings.lookup(self.node_id, digest)
        if recorded is not None:
            answer, tokens, cost = chat_answer(recorded), 0, 0.0
            payload, replayed = dict(recorded), replayed_details(recorded)
        else:
            answer, tokens, cost = await self._ask(request, ctx)
            payload = ctx.redactor.value(chat_payload(answer, tokens, cost))  # stored: no secrets
            replayed = {}
        await ctx.recordings.record(self.node_id, digest, "chat", payload)
        intent = self._pick(answer.text)
        routed = _routed(intent, answer=answer.text[:100], model=answer.model)
        details = {**routed.details, **replayed}
        return NodeOutput(routed.result, tokens, cost, routed.updates, details)

    async def _ask(self, request: ChatRequest, ctx: RunContext) -> tuple[ChatResult, int, float]:
        async with spending(ctx.budget, self.node_id, chat_estimate(request, self, ctx)) as meter:
            with provider_call(
                "chat", self.source(), request=request, redact=ctx.redactor.text
            ) as call:
                answer: ChatResult = await self.adapter(ctx).chat(request)
                call.answered(answer.model, answer.usage, answer.finish_reason, answer.text)
            meter.used = Spend(*chat_cost(answer, ctx))
        return answer, meter.used.tokens, meter.used.cost

    def _pick(self, answer: str) -> str:
        said = answer.strip().strip(".\"'`").lower()
        names = {name.lower(): name for name in self.meta.intents}
        if said in names:
            return names[said]
        mentioned = [name for low, name in names.items() if _word(low).search(said)]
        return mentioned[0] if len(mentioned) == 1 else self.meta.default


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class SemanticRouterNode(Node):
    """Embeds the message and the examples; the nearest intent wins above `threshold`."""

    kind = "router"
    meta: SemanticRouter

    _examples: list[tuple[str, tuple[float, ...]]] | None = None

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        labels = [(i, ex) for i, examples in self.meta.examples.items() for ex in examples]
        text = str(state.get("user_input") or "")
        adapter = self.adapter(ctx)
        # The examples are fixed by the spec: embed them once per compiled graph, not per run.
        texts = [text] if self._examples else [text, *(ex for _, ex in labels)]
        for each in texts:
            check_text(each, f"Node '{self.node_id}': the user_input or an example")
        model = str(self.source().config.get("model_name", ""))
        tokens = text_tokens(*texts)
        want = Spend(tokens, ctx.prices.cost(model, tokens, 0))
        async with spending(ctx.budget, self.node_id, want) as meter:
            with provider_call("embeddings", self.source()) as call:
                embedded = await adapter.embed(texts)
                call.answered(embedded.model, embedded.usage)
            usage = embedded.usage
            cost = ctx.prices.cost(embedded.model, usage.prompt_tokens, 0)
            meter.used = Spend(usage.total_tokens, cost)
        if len(embedded.vectors) != len(texts):
            raise malformed_error(
                embedded.model, f"{len(embedded.vectors)} embeddings came for {len(texts)} texts"
            )
        query, *vectors = embedded.vectors
        if self._examples is None:
            self._examples = [(i, v) for (i, _), v in zip(labels, vectors, strict=True)]
        scores = [(_cosine(query, vector), intent) for intent, vector in self._examples]
        best, intent = max(scores, default=(0.0, self.meta.default))
        chosen = intent if best >= self.meta.threshold else self.meta.default
        routed = _routed(chosen, score=round(best, 4))
        return NodeOutput(routed.result, usage.total_tokens, cost, routed.updates, routed.details)


ROUTER_STRATEGIES: dict[str, type[Node]] = {
    "keyword": KeywordRouterNode,
    "rules": RulesRouterNode,
    "llm": LLMRouterNode,
    "semantic": SemanticRouterNode,
}
