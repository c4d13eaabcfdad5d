from __future__ import annotations

import base64
from typing import Any

from runtime.context import RunContext
from runtime.node_metadata import ImageMetadata
from runtime.nodes.base import Node, NodeOutput, State
from runtime.providers.base import GeneratedImage, ImageRequest
from runtime.strict import IMAGE_QUALITY_ALIASES


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
        ctx.budget.check(self.node_id)
        answer = await self.adapter(ctx).generate(request)
        image = answer.images[0]
        usage = answer.usage
        result: dict[str, Any] = {
            "url": await self._url(image, ctx),
            "revised_prompt": image.revised_prompt,
            "size": answer.size or request.size,
            "model": answer.model,
        }
        cost = ctx.prices.cost(answer.model, usage.prompt_tokens, usage.completion_tokens)
        ctx.budget.spend(usage.total_tokens, cost)
        return NodeOutput(result=result, tokens=usage.total_tokens, cost=cost)

    async def _url(self, image: GeneratedImage, ctx: RunContext) -> str | None:
        if image.data is None:
            return image.url
        if ctx.store_image is not None:
            return await ctx.store_image(image.data, image.mime_type)
        encoded = base64.b64encode(image.data).decode()
        return f"data:{image.mime_type};base64,{encoded}"
