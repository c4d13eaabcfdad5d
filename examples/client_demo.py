"""The offline demo through the Python client: validate, store, run at once, run in the
background following its events live, and read the execution with its trace.

    make run                                   # prints the demo tenant's key
    AGENTFLOW_API_KEY=... .venv/bin/python examples/client_demo.py

AGENTFLOW_URL defaults to http://127.0.0.1:8000. The client is `pip install ./clients/python`;
from this repository the script also finds it without installing.
"""

import json
import os
import sys
from pathlib import Path

try:
    from agentflow_client import AgentFlow, AgentFlowError, Workflow
except ImportError:  # not installed: the copy in this repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python" / "src"))
    from agentflow_client import AgentFlow, AgentFlowError, Workflow

SPEC = json.loads((Path(__file__).with_name("offline-demo.json")).read_text())
QUESTION = {"user_input": "what are your prices?"}


def store(af: AgentFlow) -> Workflow:
    """The stored offline demo: updated when it is there already, created when not."""
    for found in af.list_workflows(name=SPEC["name"]):
        if found.name == SPEC["name"]:
            return af.update_workflow(found.id, SPEC)
    return af.create_workflow(SPEC)


def demo(af: AgentFlow) -> int:
    me = af.me()
    print(f"tenant {me.tenant} ({me.role} key {me.key_prefix})")
    checked = af.validate(SPEC)
    print(f"validate: valid={checked.valid}, {len(checked.errors)} errors")
    for error in checked.errors:
        print(f"  {error.type} at {error.path}: {error.message}")
    if not checked.valid:
        return 1

    workflow = store(af)
    print(f"stored: {workflow.id} version {workflow.version}")

    now = af.execute(workflow.id, QUESTION)
    answer = (now.final_state or {}).get("final_output", "")
    print(f"run at once: {now.status} in {now.execution_time:.3f} s: {answer.splitlines()[0]}")

    queued = af.execute(workflow.id, QUESTION, background=True)
    print(f"run in the background: {queued.execution_id} {queued.status}")
    for event in af.events(queued.execution_id):
        where = event.data.get("node_id") or event.data.get("status", "")
        print(f"  event {event.id}: {event.event} {where}")

    execution = af.get_execution(queued.execution_id)
    print(f"execution {execution.id}: {execution.status}, {execution.tokens_used} tokens")
    for node in execution.nodes:
        print(f"  {node.node_id:<10} {node.status:<10} {(node.duration or 0) * 1000:.1f} ms")
    return 0 if execution.status == "succeeded" and now.succeeded else 1


def main() -> int:
    key = os.environ.get("AGENTFLOW_API_KEY")
    if not key:
        print("Set AGENTFLOW_API_KEY (make run prints the demo tenant's key).", file=sys.stderr)
        return 2
    url = os.environ.get("AGENTFLOW_URL", "http://127.0.0.1:8000")
    try:
        with AgentFlow(url, key) as af:
            return demo(af)
    except AgentFlowError as exc:
        print(f"AgentFlow answered {exc.status} {exc.title}: {exc.detail}", file=sys.stderr)
        for error in exc.errors:
            where = error.get("field") or error.get("path")
            print(f"  {where}: {error.get('message')}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
