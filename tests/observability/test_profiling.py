"""Profiles an operator asks for: of one run (kept beside its execution, shown in the admin to
staff only) and of one endpoint (a file)."""

import io
import json
import secrets
from functools import partial
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from executions.models import Execution, ExecutionProfile
from tenants.models import Tenant
from tests.conftest import IssuedKey, client_for
from tests.stack import Stack, stack_env, wait_for

URL = "/api/v1/workflows/execute"


def chain(name: str, length: int = 5) -> dict[str, Any]:
    """input → `length` template aggregators, each reading the one before."""
    nodes: list[dict[str, Any]] = [{"id": "input", "type": "input", "metadata": {}}]
    edges = []
    for i in range(length):
        template = "{{ user_input }} " + "{% for n in range(200) %}{{ n }}{% endfor %}"
        nodes.append(
            {
                "id": f"step{i}",
                "type": "aggregator",
                "metadata": {"strategy": "template", "template": template},
            }
        )
        edges.append({"from": nodes[-2]["id"], "to": f"step{i}"})
    return {"name": name, "start_node": "input", "nodes": nodes, "edges": edges}


def execute(key: IssuedKey, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"workflow": spec, "initial_state": {"user_input": "profile me"}, **extra}
    answer = client_for(key).post(URL, body, format="json")
    assert answer.status_code in (200, 202), answer.content
    return dict(answer.json())


def profile_url(profile: ExecutionProfile) -> str:
    return f"/admin/executions/execution/{quote(profile.execution_id)}/profiles/{profile.pk}/"


def browser(*, staff: bool, superuser: bool = False) -> Client:
    user = get_user_model().objects.create_user(
        f"user-{secrets.token_hex(4)}", password=secrets.token_urlsafe(16), is_staff=staff
    )
    user.is_superuser = superuser
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_profile_run_profiles_an_execution_again_and_keeps_the_profile_beside_it(
    executor_key: IssuedKey,
) -> None:
    first = execute(executor_key, chain("slow-chain"))
    assert first["status"] == "success"
    out = io.StringIO()
    call_command("profile_run", first["execution_id"], stdout=out)

    again = Execution.objects.exclude(pk=first["execution_id"]).get()
    assert (again.status, again.created_by, again.workflow_name) == (
        "succeeded",
        "profile_run",
        "slow-chain",
    )
    assert again.initial_state == {"user_input": "profile me"}
    profile = again.profiles.get()
    assert profile.duration > 0
    assert "pyinstrument" in profile.html
    # The run itself was sampled on the runtime loop, not the thread waiting for it.
    assert "run_workflow" in profile.html and "execute_node" in profile.html
    assert not ExecutionProfile.objects.filter(execution_id=first["execution_id"]).exists()
    assert f"execution {again.id}: succeeded" in out.getvalue()
    assert profile_url(profile) in out.getvalue()


@pytest.mark.django_db
def test_profile_run_profiles_a_stored_workflows_current_version(
    developer_key: IssuedKey,
) -> None:
    stored = client_for(developer_key).post(
        "/api/v1/workflows", {"spec": chain("stored-chain")}, format="json"
    )
    assert stored.status_code == 201, stored.content
    workflow_id = stored.json()["id"]
    call_command("profile_run", workflow_id, "--input", "hi", stdout=io.StringIO())
    ran = Execution.objects.get()
    assert (ran.workflow_id, ran.workflow_version, ran.status) == (workflow_id, 1, "succeeded")
    assert ran.initial_state == {"user_input": "hi"}
    assert ran.profiles.count() == 1


@pytest.mark.django_db
def test_runs_of_the_workflows_the_operator_names_are_profiled(
    executor_key: IssuedKey, settings
) -> None:
    settings.AGENTFLOW_PROFILE_EXECUTIONS = frozenset({"watched"})
    watched = execute(executor_key, chain("watched", 3))
    other = execute(executor_key, chain("unwatched", 3))
    assert ExecutionProfile.objects.filter(execution_id=watched["execution_id"]).count() == 1
    assert not ExecutionProfile.objects.filter(execution_id=other["execution_id"]).exists()


@pytest.mark.django_db
def test_a_stored_profile_is_shown_to_staff_only(executor_key: IssuedKey) -> None:
    shown_run = execute(executor_key, chain("shown"))
    call_command("profile_run", shown_run["execution_id"], stdout=io.StringIO())
    profile = ExecutionProfile.objects.get()
    staff = browser(staff=True, superuser=True)

    page = staff.get(f"/admin/executions/execution/{quote(profile.execution_id)}/change/")
    assert page.status_code == 200
    assert profile_url(profile) in page.content.decode()
    shown = staff.get(profile_url(profile))
    assert shown.status_code == 200
    assert shown.content.decode() == profile.html
    assert shown.headers["Content-Security-Policy"] == "sandbox allow-scripts"

    # A signed-in user who is not staff, and an API key (any role), get the login page.
    for client in (browser(staff=False), client_for(executor_key)):
        refused = client.get(profile_url(profile))
        assert refused.status_code == 302
        assert refused.headers["Location"].startswith("/admin/login/")
    # Staff without the permission to view executions: refused.
    assert browser(staff=True).get(profile_url(profile)).status_code == 403
    # The API shows no profile.
    api = client_for(executor_key).get(f"/api/v1/executions/{profile.execution_id}")
    assert api.status_code == 200
    assert "pyinstrument" not in api.content.decode()


@pytest.mark.django_db
def test_profile_request_writes_the_profile_of_one_endpoint(
    executor_key: IssuedKey, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("AGENTFLOW_PROFILE_KEY", executor_key.secret)
    output = tmp_path / "validate.html"
    out = io.StringIO()
    call_command(
        "profile_request",
        "POST",
        "/api/v1/workflows/validate",
        data=json.dumps(chain("validated", 20)),
        repeat=10,
        output=str(output),
        stdout=out,
    )
    assert "10 call(s), status [200]" in out.getvalue()
    html = output.read_text()
    assert "pyinstrument" in html
    # The request's own frames were sampled: Django's handler and the DRF view around the rest.
    assert '"identifier": "get_response' in html and '"identifier": "dispatch' in html
    assert executor_key.secret not in html


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_profiles_the_background_runs_of_a_named_workflow(
    tenant: Tenant, executor_key: IssuedKey, tmp_path
) -> None:
    stack = Stack(stack_env(tmp_path, AGENTFLOW_PROFILE_EXECUTIONS="watched"), tmp_path)
    try:
        stack.worker()
        watched = execute(executor_key, chain("watched"), mode="async")["execution_id"]
        other = execute(executor_key, chain("unwatched"), mode="async")["execution_id"]
        for execution_id in (watched, other):
            wait_for(partial(_ended, execution_id), 60, f"the background run {execution_id}")
    finally:
        stack.stop()
    assert Execution.objects.get(pk=watched).status == "succeeded"
    profile = ExecutionProfile.objects.get()
    assert profile.execution_id == watched
    assert "run_workflow" in profile.html and "execute_node" in profile.html


def _ended(execution_id: str) -> bool:
    return Execution.objects.filter(pk=execution_id, finished_at__isnull=False).exists()
