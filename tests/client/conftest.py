"""The client tests: `agentflow_client` from clients/python/src (not installed in the dev venv,
so no lock file changes), against one real server (uvicorn + a run worker) per module."""

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IssuedKey, issue_key
from tests.fakes.providers import FakeOpenAIServer
from tests.stack import ROOT, Stack, stack_env

CLIENT_SRC = ROOT / "clients" / "python" / "src"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))

OFFLINE_DEMO: dict[str, Any] = json.loads((ROOT / "examples" / "offline-demo.json").read_text())
DIFY_SAMPLE = (ROOT / "examples" / "imports" / "dify-support-triage.yml").read_text()
PRICES = "Espresso machine: 249.0 (12 in stock)"
SLOW_CALL = 60.0
"""How long the fake provider holds a call a test means to cancel."""


def slow_spec(marker: str) -> dict[str, Any]:
    """One LLM call to the fake provider: held for SLOW_CALL seconds when scripted so."""
    return {
        "name": f"slow-{marker}",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {
                "id": "ask",
                "type": "llm",
                "metadata": {"source": "gpt", "prompt": "{{ user_input }}"},
            },
        ],
        "edges": [{"from": "input", "to": "ask"}],
        "sources": [
            {
                "id": "gpt",
                "kind": "openai",
                "config": {"model_name": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
            }
        ],
    }


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
    provider: FakeOpenAIServer,
) -> Iterator[Stack]:
    """One web process and one run worker for the module's tests (each test has its own
    tenant: the test database is emptied between tests)."""
    data = tmp_path_factory.mktemp("client-stack")
    with django_db_blocker.unblock():
        env = stack_env(
            data,
            AGENTFLOW_PROVIDER_BASE_URLS=json.dumps({"openai": provider.base_url}),
            OPENAI_API_KEY="sk-test-client-0123456789",
        )
    stack = Stack(env, data)
    try:
        stack.web()
        stack.worker()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def key(server: Stack, tenant: Any) -> IssuedKey:
    """A developer key of a tenant that may run the offline demo and call the fake provider."""
    from tenants.management.commands.demo_catalogue import write_catalogue

    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()
    data_dir = Path(server.env["AGENTFLOW_DATA_DIR"])
    write_catalogue(data_dir / "sqlite" / f"t{tenant.pk}" / "demo.sqlite3")
    return issue_key(tenant, "developer")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Forget the client's modules once these tests have imported them: the generated-client
    test (tests/site/test_generated_client.py) imports a package of the same name from its own
    directory, in the same process when both files land on one test worker."""
    for name in [n for n in sys.modules if n.partition(".")[0] == "agentflow_client"]:
        del sys.modules[name]
