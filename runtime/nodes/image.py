from __future__ import annotations

import base64
from typing import Any

from runtime.budget import Spend, spending, text_tokens
from runtime.context import RunContext
from runtime.node_metadata import ImageMetadata
from runtime.nodes.base import Node, NodeOutput, State
from runtime.providers.base import GeneratedImage, ImageRequest
from runtime.strict import IMAGE_QUALITY_ALIASES
from runtime.telemetry import provider_call

IMAGE_TOKENS = 6_240
"""Output tokens reserved from the daily budget for one image: the most gpt-image-1 bills for
one (high quality, 1024x1536)."""


def _quality(model: str, quality: str | None) -> str | None:
    """`standard`/`hd` are DALL·E words; GPT image models call them `medium`/`high`."""
    if quality and model.startswith("gpt-image"):
        return IMAGE_QUALITY_ALIASES.get(quality, quality)
    return quality


class ImageNode(Node):
    """Generates one image. Bytes (GPT image models always send them) are stored and served at
    AgentFlow's own URL; a provider URL (DALL·E) is passed through."""

    kind = "image"
    result_key = "image_result"
    meta: ImageMetadata

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        config = self.source().config
        model = str(config.get("model_name", ""))
        request = ImageRequest(
            prompt=await self.evaluate(lambda: self.render(self.meta.prompt, state)),
            size=self.meta.size or config.get("size"),
            quality=_quality(model, self.meta.quality or config.get("quality")),
            style=self.meta.style or config.get("style"),
        )
        ctx.note_input(self.node_id, {"prompt": request.prompt})
        prompt = text_tokens(request.prompt)
        want = Spend(prompt + IMAGE_TOKENS, ctx.prices.cost(model, prompt, IMAGE_TOKENS))
        async with spending(ctx.budget, self.node_id, want) as meter:
            source, redact = self.source(), ctx.redactor.text
            with provider_call("generate_content", source, request=request, redact=redact) as call:
                answer = await self.adapter(ctx).generate(request)
                call.answered(answer.model, answer.usage)
            usage = answer.usage
            cost = ctx.prices.cost(answer.model, usage.prompt_tokens, usage.completion_tokens)
            meter.used = Spend(usage.total_tokens, cost)
        image = answer.images[0]
        result: dict[str, Any] = {
            "url": await self._url(image, ctx),
            "revised_prompt": image.revised_prompt,
            "size": answer.size or request.size,
            "model": answer.model,
        }
        return NodeOutput(result=result, tokens=usage.total_tokens, cost=cost)

    async def _url(self, image: GeneratedImage, ctx: RunContext) -> str | None:
        if image.data is None:
            return image.url
        if ctx.store_image is not None:
            return await ctx.store_image(image.data, image.mime_type)
        encoded = base64.b64encode(image.data).decode()
        return f"data:{image.mime_type};base64,{encoded}"
