"""A typed client generated from `/api/schema/` (openapi-python-client) creates, runs and reads
a workflow against a real server: the OpenAPI document is true enough to build on.

The client is generated afresh from the document the server serves, into a temporary
directory, and imported from there; nothing generated is committed.
"""

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from django.db import connection

from tests.conftest import IN_CI, IssuedKey, issue_key
from tests.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SPEC = {
    "name": "greeter",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "hello",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "Hello, {{ user_input }}!"},
        },
    ],
    "edges": [{"from": "input", "to": "hello"}],
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Stack]:
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("the generated-client test runs on PostgreSQL (DATABASE_URL) under CI")
        pytest.skip("the generated-client test runs on PostgreSQL")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "AGENTFLOW_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
    }
    stack = Stack(env, tmp_path)
    stack.web()
    yield stack
    stack.stop()


def _generate(schema: dict[str, Any], where: Path) -> Any:
    (where / "schema.json").write_text(json.dumps(schema))
    tool = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(tool), "generate", "--path", "schema.json", "--meta", "none", "--output-path", "out"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (where / "out" / "client.py").exists(), done.stdout + done.stderr
    (where / "out").rename(where / "agentflow_generated")
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module("agentflow_generated")
    finally:
        sys.path.remove(str(where))


def test_a_generated_client_creates_runs_and_reads_a_workflow(
    server: Stack, tenant: Any, tmp_path: Path
) -> None:
    key: IssuedKey = issue_key(tenant, "developer")
    served = httpx2.get(
        f"{server.url}/api/schema/",
        headers={"Accept": "application/vnd.oai.openapi+json", "X-API-Key": key.secret},
        timeout=30,
    )
    assert served.status_code == 200, (served.status_code, served.text[:500])
    schema = served.json()
    package = _generate(schema, tmp_path)
    api = importlib.import_module("agentflow_generated.api.workflows.v1_workflows_create")
    run = importlib.import_module("agentflow_generated.api.workflows.workflows_execute_stored")
    read = importlib.import_module("agentflow_generated.api.executions.executions_retrieve")
    models = importlib.import_module("agentflow_generated.models")
    client = package.AuthenticatedClient(
        base_url=server.url, token=key.secret, prefix="", auth_header_name="X-API-Key"
    )

    created = api.sync_detailed(
        client=client, body=models.WorkflowWriteRequest.from_dict({"spec": SPEC})
    )
    assert created.status_code == 201, created.content
    workflow = created.parsed
    assert isinstance(workflow, models.WorkflowDetail)
    assert workflow.id.startswith("wf_")

    body = models.StoredExecuteRequestRequestType1.from_dict(
        {"initial_state": {"user_input": "Ada"}}
    )
    answer = run.sync_detailed(workflow.id, client=client, body=body)
    assert answer.status_code == 200, answer.content
    result = answer.parsed
    assert isinstance(result, models.ExecuteResponse)
    assert result.status == "success"
    assert result.final_state["final_output"] == "Hello, Ada!"

    execution = read.sync_detailed(result.execution_id, client=client)
    assert execution.status_code == 200, execution.content
    assert isinstance(execution.parsed, models.Execution)
    assert execution.parsed.workflow_name == "greeter"
    assert [node.node_id for node in execution.parsed.nodes] == ["input", "hello"]

    missing = read.sync_detailed("exec_" + "0" * 24, client=client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Problem)  # the error schema is declared too
