"""Import the provider SDKs before a run needs them.

The SDKs take seconds to import (anthropic about 1.8 s, openai about 0.7 s here). Imported lazily
inside a running event loop, that import blocks every parallel branch; imported here — at server
start, or on a thread before the graph starts — it costs the run nothing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

SDK_MODULES: dict[str, str] = {
    "openai": "openai",
    "azure_openai": "openai",
    "openai_image": "openai",
    "anthropic": "anthropic",
    "google": "google.genai",
}


def missing(kinds: Iterable[str]) -> list[str]:
    """The SDK modules these source kinds need that are not imported yet."""
    needed = {SDK_MODULES[kind] for kind in kinds if kind in SDK_MODULES}
    return sorted(module for module in needed if module not in sys.modules)


def preload(kinds: Iterable[str] = SDK_MODULES) -> None:
    for module in missing(kinds):
        importlib.import_module(module)
