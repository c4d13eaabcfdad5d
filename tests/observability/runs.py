"""A stored workflow calling the fake OpenAI server, queued over the API and run by an
in-process run worker (`executions.worker.RunWorker` on a thread, on the test database)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from executions.models import FINISHED, Execution
from executions.worker import RunWorker
from runtime import loop
from tests.stack import wait_for
from workflows.services import workflow_create

PROMPT_CANARY = "canary-prompt-text-7f3a"
"""In the run's prompt: it must appear in no span and no log line."""
API_KEY = "sk-observability-canary-0123456789"
WAIT = 60


def llm_chain(name: str = "traced-chain") -> dict[str, Any]:
    """input → llm `draft` → llm `polish`, both on one OpenAI source."""
    llm = {"source": "gpt", "prompt": f"{PROMPT_CANARY}: {{{{ user_input }}}}"}
    return {
        "name": name,
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "draft", "type": "llm", "metadata": llm},
            {"id": "polish", "type": "llm", "metadata": {**llm, "max_tokens": 64}},
        ],
        "edges": [{"from": "input", "to": "draft"}, {"from": "draft", "to": "polish"}],
        "sources": [
            {
                "id": "gpt",
                "kind": "openai",
                "config": {
                    "model_name": "gpt-4o-mini",
                    "api_key_env": "OPENAI_API_KEY",
                    "max_retries": 0,
                },
            }
        ],
    }


def provider_ready(tenant: Any, settings: Any, monkeypatch: Any, base_url: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    settings.AGENTFLOW_PROVIDER_BASE_URLS = {"openai": base_url}
    tenant.allowed_env = ["OPENAI_API_KEY"]
    tenant.save()


def queue_stored_run(client: Any, tenant: Any) -> tuple[str, str]:
    """(workflow id, execution id) of a run queued with mode async."""
    workflow = workflow_create(tenant=tenant, spec=llm_chain(), actor="test")
    answer = client.post(
        f"/api/v1/workflows/{workflow.id}/execute",
        {"initial_state": {"user_input": "hello"}, "mode": "async"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    return workflow.id, answer.json()["execution_id"]


@contextmanager
def running_worker() -> Iterator[RunWorker]:
    """A run worker on a thread of this process, stopped (and its connections closed) after."""
    worker = RunWorker(capacity=4, poll=0.1, grace=5.0)

    def serve() -> None:
        try:
            worker.serve()
        finally:
            connections.close_all()

    thread = threading.Thread(target=serve, name="test-run-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        thread.join(WAIT)
        saver = worker.saver._saver  # its checkpoint pool: closed, or the test database stays
        if saver is not None and hasattr(saver, "conn"):
            loop.run(saver.conn.close())


def finished(execution_id: str) -> Execution:
    wait_for(
        lambda: Execution.objects.filter(pk=execution_id, status__in=FINISHED).exists(),
        WAIT,
        f"{execution_id} to finish",
    )
    return Execution.objects.get(pk=execution_id)
