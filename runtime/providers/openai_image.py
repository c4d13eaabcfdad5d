"""OpenAI image generation: GPT image models (base64 bytes), DALL·E where still offered (URLs)."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from runtime.providers._common import OPENAI_URL, SDKAdapter, first
from runtime.providers._errors import malformed_error, translated
from runtime.providers.base import (
    GeneratedImage,
    ImageRequest,
    ImageResult,
    Usage,
)
from runtime.providers.openai import translate_openai_error
from runtime.source_configs import OpenAIImageConfig
from runtime.strict import IMAGE_QUALITY_ALIASES

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types import Image, ImagesResponse

PROVIDER = "OpenAI"
DEFAULT_IMAGE_TIMEOUT = 180.0
"""A large, high-quality GPT image takes well over a minute: more than the chat default."""
GPT_IMAGE_PREFIXES = ("gpt-image", "chatgpt-image")
# DALL·E 3 knows only "standard" and "hd"; the GPT image names map onto them.
DALL_E_3_QUALITY = {
    "low": "standard",
    "medium": "standard",
    "standard": "standard",
    "high": "hd",
    "hd": "hd",
}
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class OpenAIImageProvider(SDKAdapter["AsyncOpenAI"]):
    """The `openai_image` source kind."""

    kind = "openai_image"
    provider = PROVIDER

    default_timeout = DEFAULT_IMAGE_TIMEOUT

    async def generate(self, request: ImageRequest) -> ImageResult:
        key = self._key()
        params = image_params(self.config, request)
        with translated(translate_openai_error(PROVIDER, self._transport.timeout), secret=key):
            response = await self._clients.get(key).images.generate(**params)
            return _result(response, params)

    def _build(self, key: str) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=key,
            base_url=self.config.base_url or OPENAI_URL,
            timeout=self._transport.timeout,
            max_retries=self._transport.max_retries,
            http_client=self._http_client(),
        )


def image_params(config: OpenAIImageConfig, request: ImageRequest) -> dict[str, Any]:
    """images.generate arguments, with quality and style in the model's own vocabulary."""
    model = config.model_name
    params: dict[str, Any] = {"model": model, "prompt": request.prompt, "n": 1}
    size = first(request.size, config.size)
    quality = _quality(model, first(request.quality, config.quality))
    style = first(request.style, config.style)
    if size is not None:
        params["size"] = size
    if quality is not None:
        params["quality"] = quality
    if style is not None and not model.startswith((*GPT_IMAGE_PREFIXES, "dall-e-2")):
        params["style"] = style  # only DALL·E 3 has styles
    return params


def _quality(model: str, quality: str | None) -> str | None:
    if quality is None:
        return None
    if model.startswith(GPT_IMAGE_PREFIXES):
        return IMAGE_QUALITY_ALIASES.get(quality, quality)
    if model.startswith("dall-e-3"):
        return DALL_E_3_QUALITY.get(quality)  # "auto": the model's default
    if model.startswith("dall-e-2"):
        return None  # one quality only
    return quality


def _result(response: ImagesResponse, params: dict[str, Any]) -> ImageResult:
    if not response.data:
        raise malformed_error(PROVIDER, "the response holds no image")
    mime_type = MIME_TYPES.get(str(response.output_format or "png"), "image/png")
    usage = response.usage
    return ImageResult(
        images=tuple(_image(item, mime_type) for item in response.data),
        model=params["model"],
        size=response.size or params.get("size"),
        usage=Usage(usage.input_tokens or 0, usage.output_tokens or 0) if usage else Usage(),
    )


def _image(item: Image, mime_type: str) -> GeneratedImage:
    if item.b64_json is None and item.url is None:
        raise malformed_error(PROVIDER, "an image has neither b64_json nor url")
    return GeneratedImage(
        url=item.url,
        data=_decoded(item.b64_json) if item.b64_json is not None else None,
        mime_type=mime_type,
        revised_prompt=item.revised_prompt,
    )


def _decoded(b64_json: str) -> bytes:
    try:
        return base64.b64decode(b64_json, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise malformed_error(PROVIDER, f"an image's base64 does not decode ({exc})") from exc
