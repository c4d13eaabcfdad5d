"""Prompt tokens as the provider counts them: tiktoken for OpenAI models, 4 characters a token
for the rest.

tiktoken downloads its BPE files on first use; this machine's deployments may reach no host but
their providers, so the two encodings the current OpenAI models use ship gzipped beside this
module (`encodings/`, see its README). Each is checked against the sha256 that tiktoken itself
expects before it is used.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import math
import re
import types
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

import tiktoken
from tiktoken_ext import openai_public

ENCODINGS_DIR = Path(__file__).with_name("encodings")
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
"""Each chat message is framed `<|start|>{role}<|message|>{content}<|end|>`: 3 tokens besides
its role's and its content's."""
REPLY_PRIMING = 3
"""Every reply is primed with `<|start|>assistant<|message|>`."""
OPENAI_KINDS = frozenset({"openai", "azure_openai", "openai_image"})

Tokenizer = Literal["o200k_base", "cl100k_base", "approximate"]
APPROXIMATE: Tokenizer = "approximate"

# Longest prefix first: "gpt-4o" and "gpt-4.1" before "gpt-4".
_MODEL_ENCODINGS: tuple[tuple[re.Pattern[str], Tokenizer], ...] = (
    (re.compile(r"^(gpt-4o|gpt-4\.1|gpt-5|o1|o3|o4|chatgpt-4o|gpt-image)"), "o200k_base"),
    (re.compile(r"^(gpt-4|gpt-3\.5|gpt-35|text-embedding-)"), "cl100k_base"),
)
_CONSTRUCTORS: dict[str, Callable[[], dict[str, Any]]] = {
    "o200k_base": openai_public.o200k_base,
    "cl100k_base": openai_public.cl100k_base,
}


class EncodingFileCorrupt(RuntimeError):
    """A vendored BPE file does not hash to what tiktoken expects."""


def tokenizer_for(kind: str, model: str) -> Tokenizer:
    """The encoding an OpenAI (or Azure OpenAI) model bills with; `approximate` elsewhere.

    An OpenAI-compatible server's unknown model is counted as the current models are (o200k).
    """
    if kind not in OPENAI_KINDS:
        return APPROXIMATE
    name = model.lower().rsplit("/", 1)[-1]
    for pattern, encoding in _MODEL_ENCODINGS:
        if pattern.match(name):
            return encoding
    return "o200k_base"


def _vendored_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """`tiktoken.load.load_tiktoken_bpe`, read from `encodings/` instead of the network."""
    path = ENCODINGS_DIR / f"{url.rsplit('/', 1)[-1]}.gz"
    data = gzip.decompress(path.read_bytes())
    if expected_hash is None or hashlib.sha256(data).hexdigest() != expected_hash:
        raise EncodingFileCorrupt(f"{path.name} does not match tiktoken's sha256 {expected_hash}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def encoding(name: str) -> tiktoken.Encoding:
    """The named encoding (o200k_base, cl100k_base), built once per process.

    tiktoken_ext's own constructor runs with its BPE loader swapped for `_vendored_ranks` (a
    copy of the function over other globals; nothing shared is changed), so the split pattern,
    special tokens and expected hash are tiktoken's, not copies that could drift from it.

    Raises:
        EncodingFileCorrupt: the vendored file is not the one tiktoken expects.
    """
    original = _CONSTRUCTORS[name]
    scope = {**original.__globals__, "load_tiktoken_bpe": _vendored_ranks}
    constructor = types.FunctionType(original.__code__, scope, original.__name__)
    return tiktoken.Encoding(**cast(dict[str, Any], constructor()))


def text_tokens(tokenizer: Tokenizer, text: str) -> int:
    """Tokens of `text`; special-token strings in it count as the plain text they are."""
    if tokenizer == APPROXIMATE:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    return len(encoding(tokenizer).encode(text, disallowed_special=()))


def chat_tokens(tokenizer: Tokenizer, messages: Iterable[tuple[str, str]]) -> int:
    """A chat prompt's tokens, from its (role, content) messages, as OpenAI bills them: per
    message 3 + its role + its content, plus 3 that prime the reply (the OpenAI cookbook's
    count). Approximate: the contents alone, as the daily budget counts them."""
    pairs = list(messages)
    if tokenizer == APPROXIMATE:
        return sum(text_tokens(tokenizer, content) for _, content in pairs)
    framed = sum(TOKENS_PER_MESSAGE + text_tokens(tokenizer, role) for role, _ in pairs)
    return framed + REPLY_PRIMING + sum(text_tokens(tokenizer, content) for _, content in pairs)
