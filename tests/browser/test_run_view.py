"""A staff user follows a run in the admin, in a real browser: the graph's nodes turn green or
red, a failed node's error opens, a live run updates by itself, and a run is cancelled."""

import re
import secrets
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from executions.models import Execution, ExecutionEvent, NodeRun, Status
from tenants.services import tenant_create
from tests.browser.conftest import TIMEOUT_MS, BrowserPage, Staff
from tests.conftest import client_for, issue_key
from tests.executions.test_run_view import add_run, example, looped_run
from tests.observability.runs import PROMPT_CANARY, provider_ready, queue_stored_run, running_worker

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says so: a failure under CI, a skip elsewhere
    expect = None  # type: ignore[assignment]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GREEN = "rgb(187, 247, 208)"
RED = "rgb(254, 202, 202)"


@pytest.fixture
def operator(transactional_db: None) -> Staff:
    """Staff (not a superuser) who may view executions and cancel them."""
    password = secrets.token_urlsafe(16)
    user = get_user_model().objects.create_user(
        f"operator-{secrets.token_hex(4)}", "op@example.com", password, is_staff=True
    )
    names = ("view_execution", "change_execution")
    user.user_permissions.add(*Permission.objects.filter(codename__in=names))
    return Staff(user.get_username(), password)


def expect_state(page: Any, node_id: str, state: str) -> None:
    """The node's group in the graph carries `af-state-<state>`, within the generous wait."""
    node = page.locator(f'svg.af-graph g.af-node[data-node-id="{node_id}"]')
    expect(node).to_have_class(re.compile(rf"(^|\s)af-state-{state}(\s|$)"), timeout=TIMEOUT_MS)


def run_url(execution: Execution) -> str:
    return f"/admin/executions/execution/{quote(execution.id)}/change/"


def fill_of(page: BrowserPage, node_id: str) -> str:
    shape = page.page.locator(f'svg.af-graph g.af-node[data-node-id="{node_id}"] .af-shape')
    return str(shape.evaluate("e => getComputedStyle(e).fill"))


def test_a_finished_run_shows_green_and_red_nodes_and_a_failed_nodes_error(
    browser_page: BrowserPage, operator: Staff
) -> None:
    execution = looped_run(tenant_create(slug="acme", name="Acme Corp"))
    page = browser_page.page
    browser_page.login(operator, run_url(execution))
    graph = page.locator("svg.af-graph")
    expect(graph).to_be_visible()
    expect(page.locator(".af-inputs pre")).to_contain_text('"user_input": "Make this clearer')
    expect(graph.locator('g.af-node[data-node-id="draft"]')).to_contain_text("retried 1 time")
    assert fill_of(browser_page, "input") == GREEN
    assert fill_of(browser_page, "draft") == GREEN
    assert fill_of(browser_page, "publish") == RED
    error = page.locator('li.af-attempt[data-node-id="publish"] pre.af-error')
    expect(error).to_be_hidden()
    page.locator('li.af-attempt[data-node-id="publish"] summary').click()
    expect(error).to_be_visible()
    expect(error).to_contain_text("publish broke: <b>no text</b>")
    retry = page.locator('li.af-attempt[data-node-id="draft"]').nth(2)
    retry.locator("summary").click()
    expect(retry.locator("pre.af-given")).to_have_text("[user]\nImprove this text: draft one")
    expect(page.get_by_text("Internals")).to_be_visible()
    expect(page.get_by_text("host-7:4242")).to_be_hidden()  # collapsed
    browser_page.screenshot("run-view")
    assert browser_page.errors == []
    assert browser_page.foreign_requests() == []


def test_a_running_run_turns_its_nodes_green_live(
    browser_page: BrowserPage, operator: Staff
) -> None:
    now = timezone.now()
    execution = Execution.objects.create(
        tenant=tenant_create(slug="acme", name="Acme Corp"),
        spec=example("offline-demo"),
        workflow_name="offline-demo",
        status=Status.RUNNING,
        initial_state={"user_input": "prices?"},
        started_at=now,
    )
    add_run(execution, "input", 0)
    router = add_run(execution, "router", 5, status=Status.RUNNING, duration=None)
    page = browser_page.page
    browser_page.login(operator, run_url(execution))
    expect_state(page, "router", "running")
    expect_state(page, "answer", "not-run")
    expect(page.get_by_text("updating live")).to_be_visible()
    streamed = {"node_id": "router", "delta": "thinking about prices"}
    ExecutionEvent.objects.create(execution=execution, kind="token", data=streamed)
    summary = page.locator('li.af-attempt[data-node-id="router"] summary')
    expect(summary).to_contain_text("…thinking about prices”", timeout=TIMEOUT_MS)
    browser_page.screenshot("running")

    NodeRun.objects.filter(pk=router.pk).update(status=Status.SUCCEEDED, duration=0.01)
    add_run(execution, "catalogue", 20, output={"rows": [{"name": "tea"}]})
    add_run(execution, "answer", 40, output="tea: 3.50")
    Execution.objects.filter(pk=execution.pk).update(
        status=Status.SUCCEEDED,
        final_state={"text_result": "tea: 3.50"},
        finished_at=now + timedelta(seconds=1),
    )
    expect_state(page, "answer", "succeeded")
    expect_state(page, "help", "skipped")
    assert fill_of(browser_page, "answer") == GREEN
    expect(page.locator(".af-output pre").first).to_contain_text('"text_result": "tea: 3.50"')
    expect(page.locator(".af-run-head .af-status")).to_have_text("Succeeded", timeout=TIMEOUT_MS)
    expect(page.get_by_text("updating live")).to_have_count(0)
    browser_page.screenshot("finished")
    assert browser_page.errors == []
    assert browser_page.foreign_requests() == []


def test_a_queued_run_is_cancelled_from_its_page(
    browser_page: BrowserPage, operator: Staff
) -> None:
    execution = looped_run(tenant_create(slug="acme", name="Acme Corp"), status=Status.QUEUED)
    Execution.objects.filter(pk=execution.pk).update(final_state=None, error=None)
    page = browser_page.page
    browser_page.login(operator, run_url(execution))
    with page.expect_navigation():
        page.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".messagelist")).to_contain_text("Cancel requested")
    expect(page.locator(".af-run-head .af-status")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    browser_page.screenshot("cancelled")
    execution.refresh_from_db()
    assert execution.status == Status.CANCELLED
    assert execution.error is not None and execution.error["code"] == "cancelled"


@pytest.fixture
def queued_llm_run(settings: Any, monkeypatch: Any, openai_server: Any) -> Execution:
    """input → llm draft → llm polish on the fake OpenAI server, queued for a worker."""
    tenant = tenant_create(slug="acme", name="Acme Corp")
    provider_ready(tenant, settings, monkeypatch, openai_server.base_url)
    _, execution_id = queue_stored_run(client_for(issue_key(tenant, "developer")), tenant)
    return Execution.objects.get(pk=execution_id)


def test_a_real_run_turns_its_nodes_green_as_a_worker_runs_it(
    browser_page: BrowserPage, operator: Staff, queued_llm_run: Execution, openai_server: Any
) -> None:
    openai_server.script(delay=2.0)  # the first call is slow enough to be seen running
    page = browser_page.page
    browser_page.login(operator, run_url(queued_llm_run))
    expect(page.locator(".af-run-head .af-status")).to_have_text("Queued")
    expect_state(page, "draft", "not-run")
    with running_worker():
        expect_state(page, "draft", "running")
        browser_page.screenshot("draft-running")
        expect_state(page, "polish", "succeeded")
        expect(page.locator(".af-run-head .af-status")).to_have_text("Succeeded", timeout=30_000)
    assert fill_of(browser_page, "draft") == fill_of(browser_page, "polish") == GREEN
    expect(page.locator('li.af-attempt[data-node-id="polish"]')).to_contain_text("tokens")
    given = page.locator('li.af-attempt[data-node-id="polish"] pre.af-given')
    expect(given).to_be_hidden()
    page.locator('li.af-attempt[data-node-id="polish"] summary').click()
    expect(given).to_have_text(f"[user]\n{PROMPT_CANARY}: hello")  # the prompt it was sent
    browser_page.screenshot("succeeded")
    assert browser_page.errors == []
    assert browser_page.foreign_requests() == []


def test_a_long_run_is_cancelled_from_its_page(
    browser_page: BrowserPage, operator: Staff, queued_llm_run: Execution, openai_server: Any
) -> None:
    openai_server.script(delay=20.0)  # far longer than the test waits for the cancel
    page = browser_page.page
    browser_page.login(operator, run_url(queued_llm_run))
    with running_worker():
        expect_state(page, "draft", "running")
        with page.expect_navigation():
            page.get_by_role("button", name="Cancel run").click()
        expect(page.locator(".messagelist")).to_contain_text("Cancel requested")
        expect(page.locator(".af-run-head .af-status")).to_have_text("Cancelled", timeout=30_000)
    expect_state(page, "draft", "cancelled")
    expect_state(page, "polish", "not-run")
    browser_page.screenshot("cancelled")
    queued_llm_run.refresh_from_db()
    assert queued_llm_run.status == Status.CANCELLED
