"""`text_stats`: counts the characters, words, lines and sentences of a templated text."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from runtime.plugins import NodePlugin, PluginContext, PluginMetadata, Template

WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")  # don't, well-known
SENTENCE_END = re.compile(r"[.!?]+")


class TextStatsMetadata(PluginMetadata):
    text: Template = Field(
        default="{{ user_input }}", description="Template of the text to measure."
    )
    words_per_minute: int = Field(
        default=200, ge=50, le=1000, description="Reading speed for `reading_seconds`."
    )
    top_words: int = Field(
        default=0, ge=0, le=50, description="How many of the most frequent words to list."
    )
    require_text: bool = Field(
        default=False, description="Fail the node when the text is empty or blank."
    )


async def run(meta: TextStatsMetadata, state: Mapping[str, Any], ctx: PluginContext) -> Any:
    text = await ctx.render(meta.text)
    ctx.note_input({"text": text})
    if meta.require_text and not text.strip():
        raise ValueError("there is no text to measure (require_text is set)")
    words = [w.lower() for w in WORD.findall(text)]
    return {
        "characters": len(text),
        "words": len(words),
        "lines": len(text.splitlines()),
        "sentences": sum(1 for part in SENTENCE_END.split(text) if part.strip()),
        "reading_seconds": round(len(words) * 60 / meta.words_per_minute, 1),
        "top_words": [w for w, _ in Counter(words).most_common(meta.top_words)],
    }


text_stats = NodePlugin(
    metadata=TextStatsMetadata,
    run=run,
    result_key="text_stats",
    description="Counts the characters, words, lines and sentences of a templated text.",
)
