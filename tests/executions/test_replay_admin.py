"""Replaying a finished run from its admin page: the form, the replay it makes (answered from
the original's record, against the fake OpenAI server), the badges of its trace, and who may."""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from executions.models import Execution, NodeRun, Status
from executions.services import execution_start
from tenants.models import AuditEvent, Tenant
from tests.executions.test_approval import review_spec
from tests.executions.test_replay_api import calls, openai, spec  # noqa: F401 (openai: a fixture)
from tests.fakes.providers import FakeOpenAIServer
from tests.tenants.test_staff_scope import SPEC, a_run, signed_in, staff_user
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_update

pytestmark = pytest.mark.django_db


def page_url(execution: Execution | str, action: str = "change") -> str:
    pk = execution if isinstance(execution, str) else execution.pk
    return f"/admin/executions/execution/{quote(pk)}/{action}/"


def messages_of(html: str) -> list[str]:
    return [" ".join(m.split()) for m in re.findall(r'<li class="[a-z]+">(.*?)</li>', html, re.S)]


@pytest.fixture
def stored(tenant: Tenant, openai: FakeOpenAIServer) -> Workflow:  # noqa: F811
    return workflow_create(tenant=tenant, spec=spec(), actor="key:setup")


@pytest.fixture
def finished_run(stored: Workflow, openai: FakeOpenAIServer) -> Execution:  # noqa: F811
    ran = execution_start(
        workflow=stored,
        version=1,
        initial_state={"user_input": "Is the sky blue?"},
        background=False,
        created_by="key:setup",
    )
    assert ran.status == Status.SUCCEEDED, ran.error
    assert calls(openai) == 3
    return ran


def test_a_finished_runs_page_offers_a_replay_of_its_versions_nodes_and_modes(
    tenant: Tenant, finished_run: Execution, stored: Workflow
) -> None:
    workflow_update(workflow=stored, spec=spec(polish="Shorter: {{ text_result }}"), actor="x")
    html = signed_in(staff_user(tenant)).get(page_url(finished_run)).content.decode()

    assert f'action="{page_url(finished_run, "replay")}"' in html
    version = re.search(r'<select name="replay-version"[^>]*>(.*?)</select>', html, re.S)
    assert version is not None and 'form="af-replay-form"' in version.group(0)
    assert re.findall(r"<option[^>]*>([^<]*)</option>", version.group(1)) == [
        "the spec it ran (v1)",
        "v2 (current)",
        "v1",
    ]
    nodes = re.search(r'<select name="replay-from_node"[^>]*>(.*?)</select>', html, re.S)
    assert nodes is not None
    assert re.findall(r'value="([^"]*)"', nodes.group(1)) == [
        "",
        "input",
        "classify",
        "draft",
        "polish",
    ]
    assert re.search(r'value="sync"[^>]*checked', html)  # the run's own mode
    assert ">Replay</button>" in html


def test_a_sync_replay_from_the_page_calls_no_provider_and_lands_on_the_new_run(
    tenant: Tenant,
    finished_run: Execution,
    openai: FakeOpenAIServer,  # noqa: F811
) -> None:
    user = staff_user(tenant)
    client = signed_in(user)

    answer = client.post(page_url(finished_run, "replay"), {"replay-mode": "sync"})

    replay = Execution.objects.get(replay_of=finished_run)
    assert answer.status_code == 302 and answer["Location"] == page_url(replay)
    assert replay.status == Status.SUCCEEDED and replay.tokens_used == 0
    assert calls(openai) == 3  # not one more
    audit = AuditEvent.objects.get(action="execution.replay", target_id=replay.pk)
    assert audit.actor == f"user:{user.get_username()}"
    assert audit.details["replay_of"] == finished_run.pk
    html = client.get(answer["Location"]).content.decode()
    assert any(m.startswith(f"This run replays {finished_run.pk}") for m in messages_of(html))
    assert f'Replay of <a href="{page_url(finished_run)}">{finished_run.pk}</a>' in html
    assert html.count('<span class="af-badge af-badge-replayed"') == 3
    originals = NodeRun.objects.filter(execution=finished_run, node_id="polish").get()
    assert originals.tokens > 0
    assert f"(was {originals.tokens} tokens, ${originals.cost.normalize():f})" in html
    assert '<span class="af-badge af-badge-kept"' not in html
    back = client.get(page_url(finished_run)).content.decode()
    assert f'Replayed as <a href="{page_url(replay)}">{replay.pk}</a>' in back


def test_a_replay_on_another_version_from_a_node_calls_only_that_node_afresh(
    tenant: Tenant,
    finished_run: Execution,
    stored: Workflow,
    openai: FakeOpenAIServer,  # noqa: F811
) -> None:
    workflow_update(workflow=stored, spec=spec(polish="Shorter: {{ text_result }}"), actor="x")
    body = {"replay-version": "2", "replay-from_node": "polish", "replay-mode": "sync"}

    answer = signed_in(staff_user(tenant)).post(page_url(finished_run, "replay"), body)

    replay = Execution.objects.get(replay_of=finished_run)
    assert answer["Location"] == page_url(replay)
    assert (replay.workflow_version, replay.replay_from_node) == (2, "polish")
    assert calls(openai) == 3 + 1
    assert openai.last_request.json["messages"][-1]["content"].startswith("Shorter:")


def test_a_background_replay_is_queued_and_says_so(
    tenant: Tenant,
    finished_run: Execution,
    openai: FakeOpenAIServer,  # noqa: F811
) -> None:
    client = signed_in(staff_user(tenant))

    answer = client.post(page_url(finished_run, "replay"), {"replay-mode": "async"})

    replay = Execution.objects.get(replay_of=finished_run)
    assert replay.status == Status.QUEUED and replay.mode == "async"
    html = client.get(answer["Location"]).content.decode()
    assert f"This replay of {finished_run.pk} is queued: a worker runs it." in messages_of(html)
    assert 'name="replay-mode"' not in html  # not finished: nothing to replay yet
    assert calls(openai) == 3


def test_refusals_come_back_as_messages_on_the_runs_page(
    tenant: Tenant, finished_run: Execution
) -> None:
    client = signed_in(staff_user(tenant))
    url = page_url(finished_run, "replay")

    unknown = client.post(url, {"replay-from_node": "nowhere", "replay-mode": "sync"})
    assert unknown["Location"] == page_url(finished_run)
    shown = messages_of(client.get(unknown["Location"]).content.decode())
    assert any(m.startswith("Not replayed: from_node: Select a valid choice.") for m in shown)

    Execution.objects.filter(pk=finished_run.pk).update(status=Status.RUNNING)
    running = client.post(url, {"replay-mode": "sync"})
    assert running["Location"] == page_url(finished_run)
    html = client.get(running["Location"]).content.decode()
    assert any("only a succeeded or failed run can be replayed" in m for m in messages_of(html))
    assert 'name="replay-mode"' not in html
    assert not Execution.objects.filter(replay_of=finished_run).exists()


def test_a_sync_replay_of_an_approval_workflow_is_refused_naming_the_node(
    tenant: Tenant,
) -> None:
    asking = a_run(workflow_create(tenant=tenant, spec=review_spec(), actor="key:setup"))
    Execution.objects.filter(pk=asking.pk).update(mode="async")
    client = signed_in(staff_user(tenant))

    answer = client.post(page_url(asking, "replay"), {"replay-mode": "sync"})

    assert answer["Location"] == page_url(asking)
    shown = messages_of(client.get(page_url(asking)).content.decode())
    assert any(
        m.startswith("Not replayed: Node &#x27;review&#x27; asks a person") for m in shown
    ), shown
    assert not Execution.objects.filter(replay_of=asking).exists()


def test_who_may_replay_and_whose_runs(
    tenant: Tenant, other_tenant: Tenant, finished_run: Execution
) -> None:
    theirs = a_run(workflow_create(tenant=other_tenant, spec=SPEC, actor="key:setup"))
    url = page_url(finished_run, "replay")
    client = signed_in(staff_user(tenant))
    assert client.get(url).status_code == 405
    assert client.post(page_url(theirs, "replay"), {"replay-mode": "sync"}).status_code == 404
    strict = signed_in(staff_user(tenant), enforce_csrf_checks=True)
    assert strict.post(url, {"replay-mode": "sync"}).status_code == 403

    watcher = staff_user(tenant)
    watcher.user_permissions.remove(Permission.objects.get(codename="add_execution"))
    watching = signed_in(watcher)
    assert watching.post(url, {"replay-mode": "sync"}).status_code == 403
    assert 'name="replay-mode"' not in watching.get(page_url(finished_run)).content.decode()
    assert Client().post(url)["Location"].startswith("/admin/login/")
    assert not Execution.objects.filter(replay_of__isnull=False).exists()


def test_kept_attempts_show_a_kept_badge_and_what_they_cost_before(tenant: Tenant) -> None:
    now = timezone.now()
    original = Execution.objects.create(
        tenant=tenant, spec=spec(), workflow_name="replayed-chain", status=Status.SUCCEEDED
    )
    replay = Execution.objects.create(
        tenant=tenant,
        spec=spec(),
        workflow_name="replayed-chain",
        status=Status.SUCCEEDED,
        started_at=now,
        replay_of=original,
        replay_from_node="polish",
    )
    kept = {"replayed": True, "kept": True, "recorded_tokens": 44, "recorded_cost": 1.2e-05}
    row: dict[str, Any] = {"execution": replay, "node_type": "llm", "status": Status.SUCCEEDED}
    NodeRun.objects.create(node_id="draft", started_at=now, details=kept, **row)
    fresh = now + timedelta(milliseconds=5)
    NodeRun.objects.create(node_id="polish", started_at=fresh, tokens=9, details={}, **row)

    html = signed_in(staff_user(tenant)).get(page_url(replay)).content.decode()

    assert html.count('<span class="af-badge af-badge-kept"') == 1
    assert '<span class="af-badge af-badge-replayed"' not in html
    assert "(was 44 tokens, $0.000012)" in html
    assert f'Replay of <a href="{page_url(original)}">{original.pk}</a>' in html
    assert "afresh from node polish" in html


def test_the_polled_view_of_a_run_that_just_finished_offers_the_replay(
    tenant: Tenant, finished_run: Execution
) -> None:
    polled = signed_in(staff_user(tenant)).get(page_url(finished_run, "run")).json()
    assert polled["active"] is False
    assert 'form="af-replay-form"' in polled["html"] and ">Replay</button>" in polled["html"]
