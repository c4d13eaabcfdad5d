"""`manage.py export_workflow` and `import_workflow`: the API's services from the command line."""

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sources.models import Source
from sources.services import source_create
from tenants.models import AuditEvent, Tenant
from workflows.models import Workflow, WorkflowVersion
from workflows.services import workflow_create, workflow_update

pytestmark = pytest.mark.django_db
SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "imports"
KEY_ENV = "OPENAI_API_KEY"
SPEC: dict[str, Any] = {
    "name": "desk",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "writer",
            "type": "llm",
            "metadata": {"source": "gpt", "prompt": "{{ user_input }}"},
        },
    ],
    "edges": [{"from": "input", "to": "writer"}],
}


@pytest.fixture
def granted(tenant: Tenant, other_tenant: Tenant) -> None:
    for t in (tenant, other_tenant):
        t.allowed_env = [KEY_ENV]
        t.save()


@pytest.fixture
def desk(tenant: Tenant, granted: None) -> Workflow:
    config = {"model_name": "gpt-4o-mini", "api_key_env": KEY_ENV}
    source_create(
        tenant=tenant, name="gpt", kind="openai", config=config, description="", actor="t"
    )
    workflow = workflow_create(tenant=tenant, spec=SPEC, actor="t")
    return workflow_update(workflow=workflow, actor="t", spec={**SPEC, "description": "v2"})


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def counts() -> tuple[int, ...]:
    return (
        Workflow.objects.count(),
        WorkflowVersion.objects.count(),
        Source.objects.count(),
        AuditEvent.objects.filter(action="workflow.import").count(),
    )


def test_an_export_imports_into_another_tenant(
    desk: Workflow, other_tenant: Tenant, tmp_path: Path
) -> None:
    out, _ = run("export_workflow", "desk", "--tenant", "acme")  # by name, to stdout
    document = json.loads(out)
    assert document["format"] == "agentflow.workflow-export"
    assert [v["version"] for v in document["versions"]] == [1, 2]
    path = tmp_path / "desk.json"
    said, _ = run("export_workflow", desk.id, "--tenant", "acme", "-o", str(path))
    assert desk.id in said and json.loads(path.read_text())["workflow"]["id"] == desk.id

    out, _ = run("import_workflow", str(path), "--tenant", "globex", "--name", "desk-copy")
    copy = Workflow.objects.get(tenant=other_tenant)
    assert out.splitlines()[0].startswith(f"{copy.id}: imported 'desk-copy' (agentflow), version 2")
    assert "sources created: src_" in out and "versions: 2" in out
    assert (copy.name, copy.description, copy.version) == ("desk-copy", "v2", 2)
    assert Source.objects.get(tenant=other_tenant).name == "gpt"
    event = AuditEvent.objects.get(action="workflow.import")
    assert event.tenant_id == other_tenant.pk and event.actor.startswith("cli")
    assert copy.created_by == event.actor


def test_the_dify_sample_imports_with_its_report(tenant: Tenant, granted: None) -> None:
    sample = str(SAMPLES / "dify-support-triage.yml")
    out, _ = run("import_workflow", sample, "--tenant", "acme", "--name", "triage")
    workflow = Workflow.objects.get(tenant=tenant)
    assert out.splitlines()[0].startswith(f"{workflow.id}: imported 'triage' (dify)")
    lines = out.splitlines()
    assert "mapped:" in lines and "not mapped:" in lines
    assert "  llm 1733000000003 → llm_1733000000003 (llm)" in lines
    assert (
        "  code 1733000000005: code nodes run arbitrary Python/JavaScript; AgentFlow runs no "
        "user code" in lines
    )


def test_stdin_and_a_source_map_name_a_stored_source(
    tenant: Tenant, granted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {"model_name": "gpt-4o-mini", "api_key_env": KEY_ENV}
    source_create(
        tenant=tenant, name="gpt", kind="openai", config=config, description="", actor="t"
    )
    text = (SAMPLES / "dify-support-triage.yml").read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    run(
        "import_workflow", "-", "--tenant", "acme", "--format", "dify", "--source-map", "openai=gpt"
    )
    spec = Workflow.objects.get(tenant=tenant).spec
    llm_sources = {n["metadata"]["source"] for n in spec["nodes"] if n["type"] == "llm"}
    assert llm_sources == {"gpt"} and not spec.get("sources")  # no inline source made


def test_an_unknown_tenant_or_workflow_is_a_clear_error_and_writes_nothing(
    desk: Workflow, tmp_path: Path
) -> None:
    path = tmp_path / "out.json"
    with pytest.raises(CommandError, match="There is no tenant 'nope'"):
        run("export_workflow", desk.id, "--tenant", "nope", "-o", str(path))
    with pytest.raises(CommandError, match="no workflow with id or name 'other'"):
        run("export_workflow", "other", "--tenant", "acme", "-o", str(path))
    assert not path.exists()
    before = counts()
    with pytest.raises(CommandError, match="There is no tenant 'nope'"):
        run("import_workflow", str(SAMPLES / "dify-support-triage.yml"), "--tenant", "nope")
    assert counts() == before


def test_a_bad_file_is_refused_naming_what(tenant: Tenant, tmp_path: Path) -> None:
    before = counts()
    with pytest.raises(CommandError, match=r"Cannot read nope\.json"):
        run("import_workflow", "nope.json", "--tenant", "acme")
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(CommandError, match="neither JSON nor YAML"):
        run("import_workflow", str(bad), "--tenant", "acme")
    bad.write_text('{"something": "else"}')
    with pytest.raises(CommandError, match="refused"):
        run("import_workflow", str(bad), "--tenant", "acme")
    with pytest.raises(CommandError, match="--source-map: 'openai' is not PROVIDER=SOURCE"):
        run("import_workflow", str(bad), "--tenant", "acme", "--source-map", "openai")
    with pytest.raises(CommandError, match="--api-key-env"):
        run("import_workflow", str(bad), "--tenant", "acme", "--api-key-env", "1-no")
    assert counts() == before


def test_a_refused_import_names_the_field_and_writes_nothing(
    desk: Workflow, other_tenant: Tenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "desk.json"
    run("export_workflow", desk.id, "--tenant", "acme", "-o", str(path))
    before = counts()
    err = io.StringIO()
    with pytest.raises(CommandError, match="refused; nothing was written"):
        call_command("import_workflow", str(path), "--tenant", "acme", stderr=err)
    assert err.getvalue().startswith("/name: You already have a workflow named 'desk'")

    other_tenant.allowed_env = []  # the source's variable is not granted there
    other_tenant.save()
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"1 problem\(s\); nothing was written"):
        call_command("import_workflow", str(path), "--tenant", "globex", stderr=err)
    assert err.getvalue().startswith("/sources/0/config/api_key_env: forbidden_secret_ref: ")
    assert counts() == before
