from __future__ import annotations

import json
import math
from typing import Any

from runtime.budget import Spend, spending, text_tokens
from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.node_input import chat_input
from runtime.node_metadata import LLMMetadata
from runtime.nodes.base import Node, NodeOutput, State
from runtime.providers.base import ChatMessage, ChatRequest, ChatResult
from runtime.ratelimit import QueueLimits, take
from runtime.replay import chat_answer, chat_payload, replayed_details, request_digest
from runtime.telemetry import provider_call

SAMPLING = ("temperature", "max_tokens", "top_p", "frequency_penalty", "presence_penalty")
DEFAULT_COMPLETION_TOKENS = 1_000
"""Tokens reserved for the answer when the node sets no `max_tokens`."""
CHARS_PER_TOKEN = 4


class InvalidResponse(NodeError):
    code = "invalid_response"


def chat_cost(result: ChatResult, ctx: RunContext) -> tuple[int, float]:
    usage = result.usage
    cost = ctx.prices.cost(result.model, usage.prompt_tokens, usage.completion_tokens)
    return usage.total_tokens, cost


def chat_estimate(request: ChatRequest, node: Node, ctx: RunContext) -> Spend:
    """What a chat call may use, reserved from the daily budget: its prompt, and its answer's
    `max_tokens` (the node's, else the source's, else 1,000), at the source's model's price."""
    config = node.source().config
    prompt = text_tokens(*(message.content for message in request.messages))
    answer = int(request.max_tokens or config.get("max_tokens") or DEFAULT_COMPLETION_TOKENS)
    model = str(config.get("model_name") or config.get("deployment") or "")
    return Spend(prompt + answer, ctx.prices.cost(model, prompt, answer))


class LLMNode(Node):
    """Renders `system` and `prompt` against the state and asks the source's model."""

    kind = "llm"
    result_key = "text_result"
    meta: LLMMetadata
    queue: QueueLimits | None = None
    """The queue on the edge into this node (set at compile time): its tokens are reserved."""

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        messages = await self.evaluate(lambda: self._messages(state))
        ctx.note_input(self.node_id, chat_input(messages))
        request = ChatRequest(
            messages=tuple(messages),
            response_format=self.meta.response_format,
            stream=self.meta.stream,
            **{name: getattr(self.meta, name) for name in SAMPLING},
        )

        digest = request_digest("chat", self.source(), request)
        recorded = ctx.recordings.lookup(self.node_id, digest)
        if recorded is not None:
            return await self._replayed(request, digest, recorded, ctx)
        reserved, waited = await self._reserve(request, ctx)
        used = 0  # a call that failed used nothing: the whole reservation goes back
        try:
            answer = await self._chat(request, ctx)
            used = answer.usage.total_tokens
        finally:
            await self._settle(ctx, used - reserved)
        tokens, cost = chat_cost(answer, ctx)
        kept = ctx.redactor.value(chat_payload(answer, tokens, cost))  # stored: no secrets
        await ctx.recordings.record(self.node_id, digest, "chat", kept)
        details: dict[str, Any] = {"model": answer.model, "finish_reason": answer.finish_reason}
        if self.queue is not None:
            details |= {"rate_wait_seconds": waited, "tokens_reserved": reserved}
        return NodeOutput(
            result=self._result(answer.text), tokens=tokens, cost=cost, details=details
        )

    async def _replayed(
        self, request: ChatRequest, digest: str, recorded: dict[str, Any], ctx: RunContext
    ) -> NodeOutput:
        """The recorded answer to the same request: no budget, no queue, no provider; it is
        kept again, so a replay of this run finds it too."""
        answer = chat_answer(recorded)
        if request.stream:
            await ctx.observer.node_token(self.node_id, answer.text)
        await ctx.recordings.record(self.node_id, digest, "chat", dict(recorded))
        details = {"model": answer.model, "finish_reason": answer.finish_reason}
        return NodeOutput(
            result=self._result(answer.text), details=details | replayed_details(recorded)
        )

    async def _chat(self, request: ChatRequest, ctx: RunContext) -> ChatResult:
        async def on_token(delta: str) -> None:
            await ctx.observer.node_token(self.node_id, delta)

        async with spending(ctx.budget, self.node_id, chat_estimate(request, self, ctx)) as meter:
            with provider_call(
                "chat", self.source(), request=request, redact=ctx.redactor.text
            ) as call:
                answer: ChatResult = await self.adapter(ctx).chat(
                    request, on_token=on_token if self.meta.stream else None
                )
                call.answered(answer.model, answer.usage, answer.finish_reason, answer.text)
            meter.used = Spend(*chat_cost(answer, ctx))
        return answer

    def _messages(self, state: State) -> list[ChatMessage]:
        messages = []
        if self.meta.system:
            messages.append(ChatMessage("system", self.render(self.meta.system, state)))
        messages.append(ChatMessage("user", self.render(self.meta.prompt, state)))
        return messages

    async def _reserve(self, request: ChatRequest, ctx: RunContext) -> tuple[int, float]:
        """Take the call's likely tokens from the queue before it: prompt + max answer."""
        limit = self.queue.get("tokens") if self.queue else None
        if self.queue is None or limit is None:
            return 0, 0.0
        chars = sum(len(message.content) for message in request.messages)
        expected = (self.meta.max_tokens or DEFAULT_COMPLETION_TOKENS) + math.ceil(
            chars / CHARS_PER_TOKEN
        )
        waited = await take(
            ctx.limiter,
            ctx.sleep,
            key=self.queue.key(ctx.tenant),
            queue_id=self.queue.queue_id,
            demand=[(limit, float(expected))],
            max_wait=ctx.max_rate_wait,
            node_id=self.node_id,
        )
        return expected, waited

    async def _settle(self, ctx: RunContext, difference: int) -> None:
        limit = self.queue.get("tokens") if self.queue else None
        if self.queue is not None and limit is not None and difference:
            await ctx.limiter.adjust(self.queue.key(ctx.tenant), [(limit, float(difference))])

    def _result(self, text: str) -> Any:
        if self.meta.response_format != "json":
            return text
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidResponse(
                f"The model was asked for JSON and answered something else: {text[:200]!r}",
                node_id=self.node_id,
            ) from exc
        except RecursionError:
            raise InvalidResponse(
                f"The model was asked for JSON and answered JSON nested too deeply to read: "
                f"{text[:200]!r}",
                node_id=self.node_id,
            ) from None
