"""Small shared pieces for the provider tests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from runtime.egress import EgressPolicy
from runtime.providers.base import ChatMessage, ChatRequest

SECRET = "sk-test-0123456789abcdef"
ENV = {"PROVIDER_KEY": SECRET}.get
_NOTHING: dict[str, str] = {}
NO_ENV = _NOTHING.get
LOCAL = EgressPolicy.of(trusted=["127.0.0.1"])
"""The fakes listen on loopback, which an adapter reaches only when the operator trusts it."""


def run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def ask(prompt: str, *, system: str | None = None, **options: Any) -> ChatRequest:
    messages = [ChatMessage("system", system)] if system else []
    return ChatRequest(messages=(*messages, ChatMessage("user", prompt)), **options)


class Tokens:
    """An `on_token` callback that keeps what it was given."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def __call__(self, token: str) -> None:
        self.received.append(token)
