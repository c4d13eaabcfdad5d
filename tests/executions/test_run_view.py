"""The run view in the admin: the graph with each node's state, the timeline of attempts, the
run's inputs and output first and its internals last; polled while live; cancelled from the page."""

import json
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from executions import run_view
from executions.models import Execution, ExecutionEvent, NodeRun, Status
from executions.run_view import INPUT_NOT_RECORDED, loop_bounds, node_states
from tenants.models import StaffMembership, Tenant
from tests.conftest import IssuedKey, client_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


SECOND_PROMPT = {"messages": [{"role": "user", "content": "Improve this text: draft one"}]}
"""What the draft's second pass was given, as its retry recorded it."""


def add_run(execution: Execution, node_id: str, at_ms: int, **fields: Any) -> NodeRun:
    assert execution.started_at is not None
    started = execution.started_at + timedelta(milliseconds=at_ms)
    fields.setdefault("status", Status.SUCCEEDED)
    fields.setdefault("duration", 0.25)
    return NodeRun.objects.create(
        execution=execution, node_id=node_id, node_type="x", started_at=started, **fields
    )


def looped_run(tenant: Tenant, status: str = Status.FAILED, **fields: Any) -> Execution:
    """draft-loop: the critic sends the draft back once; the draft's second pass needs a retry;
    publish fails."""
    now = timezone.now()
    row = {
        "tenant": tenant,
        "spec": example("draft-loop"),
        "spec_digest": "d" * 64,
        "workflow_name": "draft-loop",
        "status": status,
        "initial_state": {"user_input": "Make this clearer, please"},
        "final_state": {"text_result": "A clear text."},
        "error": {"code": "node_failed", "message": "publish broke", "node_id": "publish"},
        "started_at": now,
        "finished_at": now + timedelta(seconds=3),
        "worker": "host-7:4242",
        "request_hash": "feedbeef" * 8,
    }
    execution = Execution.objects.create(**(row | fields))
    add_run(execution, "input", 0, duration=0.0023009999999885, output={"user_input": "x"})
    add_run(execution, "draft", 10, output="draft one", tokens=120, cost="0.00012")
    add_run(execution, "critic", 400, output="revise", details={"intent": "revise"})
    add_run(execution, "draft", 700, status=Status.FAILED, error={"code": "provider_error"})
    add_run(
        execution,
        "draft",
        1500,
        attempt=2,
        output="draft two",
        details={"model": "gpt-4o-mini", "rate_wait_seconds": 0.75, "input": SECOND_PROMPT},
    )
    add_run(execution, "critic", 2000, output="done")
    add_run(
        execution,
        "publish",
        2400,
        status=Status.FAILED,
        error={"code": "node_failed", "message": "publish broke: <b>no text</b>"},
    )
    return execution


def page_of(client: Client, execution: Execution) -> str:
    response = client.get(f"/admin/executions/execution/{quote(execution.id)}/change/")
    assert response.status_code == 200
    return str(response.content.decode())


def node_group(html: str, node_id: str) -> str:
    found = re.search(rf'<g class="([^"]*)" data-node-id="{node_id}"[^>]*>(.*?)</g>\n', html, re.S)
    assert found is not None, f"no node {node_id} in the picture"
    return f"{found.group(1)} | {found.group(2)}"


@pytest.mark.django_db
def test_each_node_of_the_graph_shows_its_state_retries_and_loop_pass(
    admin_client: Client, tenant: Tenant
) -> None:
    html = page_of(admin_client, looped_run(tenant))
    assert "af-state-succeeded" in node_group(html, "input")
    draft = node_group(html, "draft")
    assert "af-state-succeeded" in draft
    assert "retried 1 time" in draft and "pass 2 of ≤4" in draft
    critic = node_group(html, "critic")
    assert "af-state-succeeded" in critic and "pass 2 of ≤4" in critic and "retried" not in critic
    assert "af-state-failed" in node_group(html, "publish")


@pytest.mark.django_db
def test_the_timeline_tells_loop_passes_apart_in_milliseconds(
    admin_client: Client, tenant: Tenant
) -> None:
    html = page_of(admin_client, looped_run(tenant))
    summaries = [
        " ".join(re.sub(r"<[^>]+>", " ", s).split())
        for s in re.findall(r"<summary>(.*?)</summary>", html, re.S)
    ]
    assert summaries[0].startswith("input · succeeded · +0 ms · 2 ms · 0 tokens")
    assert summaries[1].startswith("draft pass 1 · succeeded · +10 ms · 250 ms · 120 tokens")
    assert "cost 0.00012" in summaries[1]
    assert summaries[3].startswith("draft pass 2 · failed · +700 ms")
    assert summaries[4].startswith("draft pass 2 · attempt 2 · succeeded · +1500 ms")
    assert "rate-limit wait 750 ms" in summaries[4]
    assert summaries[5].startswith("critic pass 2 · succeeded")
    assert "0.0023009999999885" not in html


@pytest.mark.django_db
def test_an_attempt_opens_to_its_input_output_and_error_or_says_its_input_is_not_recorded(
    admin_client: Client, tenant: Tenant
) -> None:
    html = page_of(admin_client, looped_run(tenant))
    assert "publish broke: &lt;b&gt;no text&lt;/b&gt;" in html  # escaped, not markup
    assert "<b>no text</b>" not in html
    assert '<pre class="af-output">&quot;draft two&quot;</pre>' in html
    assert html.count(escape(INPUT_NOT_RECORDED)) == 6
    assert '<pre class="af-given">[user]\nImprove this text: draft one</pre>' in html
    assert "&quot;model&quot;: &quot;gpt-4o-mini&quot;" in html


@pytest.mark.django_db
def test_inputs_and_output_come_first_and_internals_last_collapsed(
    admin_client: Client, tenant: Tenant
) -> None:
    html = page_of(admin_client, looped_run(tenant))
    inputs = html.index("&quot;user_input&quot;: &quot;Make this clearer, please&quot;")
    output = html.index("&quot;text_result&quot;: &quot;A clear text.&quot;")
    graph = html.index('<svg xmlns="http://www.w3.org/2000/svg"')
    timeline = html.index('<ol class="af-attempts">')
    internals = html.index(">Internals<")
    assert inputs < output < graph < timeline < internals
    assert html.index("host-7:4242") > internals and html.index("feedbeef") > internals
    assert "<details><summary>" in html[internals - 400 : internals]  # Django's collapsed fieldset
    assert "<textarea" not in html


@pytest.mark.django_db
def test_a_branch_a_finished_run_did_not_take_is_skipped(
    admin_client: Client, tenant: Tenant
) -> None:
    now = timezone.now()
    execution = Execution.objects.create(
        tenant=tenant,
        spec=example("offline-demo"),
        workflow_name="offline-demo",
        status=Status.SUCCEEDED,
        started_at=now,
    )
    for at, node_id in enumerate(("input", "router", "help")):
        add_run(execution, node_id, at)
    html = page_of(admin_client, execution)
    assert "af-state-succeeded" in node_group(html, "help")
    assert "af-state-skipped" in node_group(html, "catalogue")
    assert "skipped" in node_group(html, "answer")


def test_nodes_of_a_running_run_are_running_or_not_run_yet() -> None:
    spec = example("offline-demo")
    started = NodeRun(node_id="input", status=Status.SUCCEEDED, attempt=1)
    going = NodeRun(node_id="router", status=Status.RUNNING, attempt=1)
    states = node_states(spec, [started, going], succeeded=False)
    assert {k: v.state for k, v in states.items()} == {
        "input": "succeeded",
        "router": "running",
        "catalogue": "not-run",
        "help": "not-run",
        "answer": "not-run",
    }
    assert states["router"].label == "running"


def test_a_loop_holds_the_nodes_on_its_cycle_only() -> None:
    assert loop_bounds(example("draft-loop")) == {"draft": [4], "critic": [4]}
    assert loop_bounds(example("offline-demo")) == {}


def browser_of(*codenames: str, staff: bool = True) -> Client:
    user = get_user_model().objects.create_user(f"u-{secrets.token_hex(4)}", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    for tenant in Tenant.objects.all():  # staff see only the tenants they act for
        StaffMembership.objects.create(user=user, tenant=tenant)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_polled_view_is_json_for_staff_who_may_view_runs_only(
    tenant: Tenant, executor_key: IssuedKey
) -> None:
    execution = looped_run(tenant, status=Status.RUNNING)
    url = f"/admin/executions/execution/{quote(execution.id)}/run/"
    body = browser_of("view_execution").get(url).json()
    assert body["status"] == "running" and body["active"] is True
    assert 'data-node-id="publish"' in body["html"] and "af-attempts" in body["html"]
    assert "Cancel run" not in body["html"]  # viewing is not cancelling
    assert (
        browser_of("view_execution", "change_execution").get(url).json()["html"].count("Cancel run")
    )
    assert browser_of().get(url).status_code == 403
    for outsider in (browser_of("view_execution", staff=False), client_for(executor_key)):
        refused = outsider.get(url)
        assert refused.status_code == 302 and refused.headers["Location"].startswith("/admin/login")


@pytest.mark.django_db
def test_cancel_from_the_page_asks_a_running_run_to_stop(tenant: Tenant) -> None:
    execution = looped_run(tenant, status=Status.RUNNING)
    url = f"/admin/executions/execution/{quote(execution.id)}/cancel/"
    assert browser_of("view_execution").post(url).status_code == 403
    operator = browser_of("view_execution", "change_execution")
    assert operator.get(url).status_code == 405
    done = operator.post(url, follow=True)
    execution.refresh_from_db()
    assert execution.cancel_requested is True and execution.status == Status.RUNNING
    assert "Cancel requested" in done.content.decode()
    execution.status = Status.SUCCEEDED
    execution.save()
    again = operator.post(url, follow=True).content.decode()
    assert "has already ended" in again


@pytest.mark.django_db
def test_cancel_needs_the_csrf_token(tenant: Tenant) -> None:
    execution = looped_run(tenant, status=Status.QUEUED)
    user = get_user_model().objects.create_superuser(f"su-{secrets.token_hex(4)}")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    refused = client.post(f"/admin/executions/execution/{quote(execution.id)}/cancel/")
    assert refused.status_code == 403
    execution.refresh_from_db()
    assert execution.status == Status.QUEUED


@pytest.mark.django_db
def test_a_run_whose_id_reads_as_an_admin_escape_opens_and_cancels(tenant: Tenant) -> None:
    execution = looped_run(tenant, Status.QUEUED, id="exec_24" + "0" * 22)  # "_24" reads as "$"
    operator = browser_of("view_execution", "change_execution")
    done = operator.post(f"/admin/executions/execution/{quote(execution.id)}/cancel/", follow=True)
    assert (
        done.redirect_chain[-1][0] == f"/admin/executions/execution/{quote(execution.id)}/change/"
    )
    assert "Cancel requested" in done.content.decode()
    assert 'class="af-status af-status-cancelled"' in done.content.decode()


@pytest.mark.django_db
def test_a_running_node_shows_what_it_has_streamed_so_far(
    admin_client: Client, tenant: Tenant
) -> None:
    execution = looped_run(tenant, status=Status.RUNNING, final_state=None)
    earlier = {"node_id": "draft", "delta": "an earlier pass's text"}
    old = ExecutionEvent.objects.create(execution=execution, kind="token", data=earlier)
    ExecutionEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(seconds=5))
    going = add_run(execution, "draft", 3000, status=Status.RUNNING, duration=None)
    for delta in ("A much ", "clearer ", "<i>text</i>"):
        data = {"node_id": "draft", "delta": delta}
        ExecutionEvent.objects.create(execution=execution, kind="token", data=data)
    streamed = ExecutionEvent.objects.exclude(pk=old.pk)
    streamed.update(at=going.started_at + timedelta(milliseconds=100))
    html = page_of(admin_client, execution)
    assert "af-state-running" in node_group(html, "draft")
    assert "pass 3 of ≤4" in node_group(html, "draft")
    assert '<pre class="af-streamed">A much clearer &lt;i&gt;text&lt;/i&gt;</pre>' in html
    assert html.count('class="af-streamed"') == 1  # the finished passes show their output
    assert "Not yet: the run is still going." in html


@pytest.mark.django_db
def test_a_long_loop_shows_its_latest_attempts_and_counts_the_rest(
    admin_client: Client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_view, "MAX_ATTEMPTS_SHOWN", 3)
    html = page_of(admin_client, looped_run(tenant))
    assert html.count('<li class="af-attempt') == 3
    assert "4 earlier attempts not shown." in html
    assert 'data-node-id="publish"' in html and "retried 1 time" in node_group(html, "draft")


@pytest.mark.django_db
def test_an_attempt_opens_to_the_prompt_it_was_given_and_the_query_of_a_db_node(
    admin_client: Client, tenant: Tenant
) -> None:
    execution = looped_run(tenant, status=Status.SUCCEEDED)
    prompt = {
        "messages": [
            {"role": "system", "content": "Be <brief>."},
            {"role": "user", "content": "Fix: x"},
        ]
    }
    NodeRun.objects.filter(execution=execution, node_id="draft").update(details={"input": prompt})
    query = {"query": "SELECT 1 WHERE a = :a", "params": {"a": "x"}}
    NodeRun.objects.filter(execution=execution, node_id="publish").update(details={"input": query})
    html = page_of(admin_client, execution)
    given = re.findall(r'<pre class="af-given">(.*?)</pre>', html, re.S)
    assert given[:3] == ["[system]\nBe &lt;brief&gt;.\n\n[user]\nFix: x"] * 3
    assert json.loads(given[3].replace("&quot;", '"')) == query
    assert html.count(escape(INPUT_NOT_RECORDED)) == 3  # input and the two critics
