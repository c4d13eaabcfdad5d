"""Fixtures: `scrape` (/metrics as Prometheus reads it), `run` (a sync execute), `providers`."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client, override_settings

from tests.conftest import IssuedKey, client_for
from tests.fakes.providers import FakeAnthropicServer, FakeOpenAIServer
from tests.observability.metrics.support import EXECUTE, TOKEN, Samples, parse


@pytest.fixture
def scrape(settings: Any, client: Client) -> Callable[[], Samples]:
    settings.AGENTFLOW_METRICS_TOKEN = TOKEN

    def scraped() -> Samples:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(response.content.decode())

    return scraped


@pytest.fixture
def run(
    django_capture_on_commit_callbacks: Any, executor_key: IssuedKey
) -> Callable[..., dict[str, Any]]:
    """A sync execute as the executor, its commits' callbacks run (the test holds a transaction)."""

    def execute(spec: dict[str, Any], state: dict[str, Any] | None = None) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(executor_key).post(
                EXECUTE, {"workflow": spec, "initial_state": state or {}}, format="json"
            )
        body: dict[str, Any] = response.json()
        return body

    return execute


@pytest.fixture
def providers(
    tenant: Any,
    openai_server: FakeOpenAIServer,
    anthropic_server: FakeAnthropicServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    tenant.allowed_env = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]
    tenant.save()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    urls = {"openai": openai_server.base_url, "anthropic": anthropic_server.url}
    with override_settings(AGENTFLOW_PROVIDER_BASE_URLS=urls):
        yield
