"""The base of every spec model and the small value types they share."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
HttpUrlStr = Annotated[
    str, StringConstraints(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2048)
]
StateKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]

ImageSize = Literal[
    "1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792", "512x512", "256x256", "auto"
]
# "standard"/"hd" are DALL·E 3's names; GPT image models call them "medium"/"high". Both are
# accepted everywhere (support-desk.json uses "standard" with gpt-image-1): an adapter maps them.
ImageQuality = Literal["standard", "hd", "low", "medium", "high", "auto"]
IMAGE_QUALITY_ALIASES = {"standard": "medium", "hd": "high"}
ImageStyle = Literal["vivid", "natural"]

_GPT_IMAGE_SIZES = frozenset({"1024x1024", "1536x1024", "1024x1536", "auto"})
IMAGE_SIZES_BY_MODEL_PREFIX: dict[str, frozenset[str]] = {
    "gpt-image": _GPT_IMAGE_SIZES,
    "chatgpt-image": _GPT_IMAGE_SIZES,
    "dall-e-3": frozenset({"1024x1024", "1792x1024", "1024x1792"}),
    "dall-e-2": frozenset({"256x256", "512x512", "1024x1024"}),
}


def image_size_problem(model_name: str | None, size: str | None) -> str | None:
    """Say why `size` does not fit the image model, or None when it fits or the model is unknown."""
    if not model_name or not size:
        return None
    for prefix, sizes in IMAGE_SIZES_BY_MODEL_PREFIX.items():
        if model_name.startswith(prefix) and size not in sizes:
            return (
                f"{model_name} does not make {size} images; use one of: {', '.join(sorted(sizes))}"
            )
    return None


class StrictModel(BaseModel):
    """Unknown fields are errors, values are not coerced ("5" is not 5), parsed specs are frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
