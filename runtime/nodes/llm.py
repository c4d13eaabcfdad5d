from __future__ import annotations

import json
from typing import Any

from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.node_metadata import LLMMetadata
from runtime.nodes.base import Node, NodeOutput, State
from runtime.providers.base import ChatMessage, ChatRequest, ChatResult

SAMPLING = ("temperature", "max_tokens", "top_p", "frequency_penalty", "presence_penalty")


class InvalidResponse(NodeError):
    code = "invalid_response"


def chat_cost(result: ChatResult, ctx: RunContext) -> tuple[int, float]:
    usage = result.usage
    cost = ctx.prices.cost(result.model, usage.prompt_tokens, usage.completion_tokens)
    return usage.total_tokens, cost


class LLMNode(Node):
    """Renders `system` and `prompt` against the state and asks the source's model."""

    kind = "llm"
    result_key = "text_result"
    meta: LLMMetadata

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        messages = []
        if self.meta.system:
            messages.append(ChatMessage("system", self.render(self.meta.system, state)))
        messages.append(ChatMessage("user", self.render(self.meta.prompt, state)))
        request = ChatRequest(
            messages=tuple(messages),
            response_format=self.meta.response_format,
            stream=self.meta.stream,
            **{name: getattr(self.meta, name) for name in SAMPLING},
        )

        async def on_token(delta: str) -> None:
            await ctx.observer.node_token(self.node_id, delta)

        answer: ChatResult = await self.adapter(ctx).chat(
            request, on_token=on_token if self.meta.stream else None
        )
        tokens, cost = chat_cost(answer, ctx)
        return NodeOutput(
            result=self._result(answer.text),
            tokens=tokens,
            cost=cost,
            details={"model": answer.model, "finish_reason": answer.finish_reason},
        )

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
