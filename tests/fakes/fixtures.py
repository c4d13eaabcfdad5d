"""Fixtures starting one fake provider server per test; import them into a conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.providers import FakeAnthropicServer, FakeGeminiServer, FakeOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """OpenAI at `.base_url`; Azure OpenAI at `.url` (the azure endpoint)."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def gemini_server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer() as server:
        yield server
