"""The vendored tiktoken encodings count as OpenAI does, offline."""

import gzip
import hashlib

import pytest

from runtime.estimate import tokenizer
from runtime.estimate.tokenizer import (
    EncodingFileCorrupt,
    chat_tokens,
    encoding,
    text_tokens,
    tokenizer_for,
)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_hello_world_is_two_tokens(name: str) -> None:
    assert text_tokens(name, "hello world") == 2  # type: ignore[arg-type]


def test_the_encodings_are_tiktokens_own() -> None:
    assert encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert encoding("o200k_base").n_vocab == 200019  # with <|endoftext|>, <|endofprompt|>
    assert encoding("cl100k_base").n_vocab == 100277


def test_the_vendored_files_hash_as_tiktoken_expects() -> None:
    expected = {"o200k_base": "446a9538", "cl100k_base": "223921b7"}
    for name, prefix in expected.items():
        data = gzip.decompress((tokenizer.ENCODINGS_DIR / f"{name}.tiktoken.gz").read_bytes())
        assert hashlib.sha256(data).hexdigest().startswith(prefix)


def test_special_token_text_in_a_prompt_counts_as_plain_text() -> None:
    assert text_tokens("o200k_base", "<|endoftext|>") > 1


def test_the_encodings_differ_where_they_should() -> None:
    text = "Multilingual: こんにちは世界, здравствуй мир"
    assert text_tokens("o200k_base", text) < text_tokens("cl100k_base", text)


@pytest.mark.parametrize(
    ("kind", "model", "expected"),
    [
        ("openai", "gpt-4o-mini", "o200k_base"),
        ("openai", "gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai", "gpt-4.1-nano", "o200k_base"),
        ("openai", "gpt-5", "o200k_base"),
        ("openai", "o3-mini", "o200k_base"),
        ("openai", "o4-mini", "o200k_base"),
        ("openai", "o1", "o200k_base"),
        ("openai", "gpt-4-turbo", "cl100k_base"),
        ("openai", "gpt-4", "cl100k_base"),
        ("openai", "gpt-3.5-turbo", "cl100k_base"),
        ("openai", "text-embedding-3-small", "cl100k_base"),
        ("openai", "llama-3.1-8b-instruct", "o200k_base"),  # OpenAI-compatible, unknown
        ("azure_openai", "gpt-4o", "o200k_base"),
        ("anthropic", "claude-sonnet-4-5", "approximate"),
        ("google", "gemini-2.5-flash", "approximate"),
    ],
)
def test_each_model_gets_its_encoding(kind: str, model: str, expected: str) -> None:
    assert tokenizer_for(kind, model) == expected


def test_a_chat_prompt_counts_as_openai_bills_it() -> None:
    # 3 per message + role + content, 3 priming the reply (the OpenAI cookbook).
    messages = [("system", "You are terse."), ("user", "hello world")]
    contents = text_tokens("o200k_base", "You are terse.") + 2
    assert chat_tokens("o200k_base", messages) == 2 * (3 + 1) + contents + 3


def test_approximate_is_four_characters_a_token() -> None:
    assert text_tokens("approximate", "x" * 9) == 3
    assert chat_tokens("approximate", [("system", "x" * 8), ("user", "y")]) == 3


def test_a_corrupt_file_is_refused(tmp_path, monkeypatch) -> None:
    (tmp_path / "cl100k_base.tiktoken.gz").write_bytes(gzip.compress(b"aGVsbG8= 0\n"))
    monkeypatch.setattr(tokenizer, "ENCODINGS_DIR", tmp_path)
    with pytest.raises(EncodingFileCorrupt, match="cl100k_base"):
        encoding.__wrapped__("cl100k_base")
