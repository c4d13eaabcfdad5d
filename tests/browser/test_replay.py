"""A staff user replays a finished run from its page, in a real browser: the new run's page
opens, each provider call answered from the original's record and marked "replayed"."""

import re
import secrets
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from executions.models import Execution, Status
from executions.services import execution_start
from tenants.services import tenant_create
from tests.browser.conftest import TIMEOUT_MS, BrowserPage, Staff
from tests.executions.test_replay_api import calls, spec
from tests.observability.runs import provider_ready
from workflows.services import workflow_create

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says so: a failure under CI, a skip elsewhere
    expect = None  # type: ignore[assignment]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def replayer(transactional_db: None) -> Staff:
    """Staff (not a superuser) who may view runs and start them."""
    password = secrets.token_urlsafe(16)
    user = get_user_model().objects.create_user(
        f"replayer-{secrets.token_hex(4)}", "replay@example.com", password, is_staff=True
    )
    names = ("view_execution", "add_execution")
    user.user_permissions.add(*Permission.objects.filter(codename__in=names))
    return Staff(user.get_username(), password)


@pytest.fixture
def finished_run(settings: Any, monkeypatch: Any, openai_server: Any) -> Execution:
    """input → classify (llm router) → draft → polish, run once on the fake OpenAI server."""
    tenant = tenant_create(slug="acme", name="Acme Corp")
    provider_ready(tenant, settings, monkeypatch, openai_server.base_url)
    workflow = workflow_create(tenant=tenant, spec=spec(), actor="key:setup")
    ran = execution_start(
        workflow=workflow,
        version=1,
        initial_state={"user_input": "Is the sky blue?"},
        background=False,
        created_by="key:setup",
    )
    assert ran.status == Status.SUCCEEDED, ran.error
    return ran


def test_replay_a_finished_run_and_land_on_the_replay_marked_replayed(
    browser_page: BrowserPage, replayer: Staff, finished_run: Execution, openai_server: Any
) -> None:
    page = browser_page.page
    browser_page.login(replayer, f"/admin/executions/execution/{quote(finished_run.pk)}/change/")
    expect(page.get_by_label("Version")).to_have_value("")  # the spec it ran
    expect(page.get_by_label("Version").locator("option:checked")).to_have_text(
        "the spec it ran (v1)"
    )
    expect(page.get_by_label("Run afresh from node")).to_have_value("")
    expect(page.get_by_label("Now, here: wait for the end")).to_be_checked()  # the run's mode
    browser_page.screenshot("form", page.locator(".af-replay"))
    with page.expect_navigation():
        page.get_by_role("button", name="Replay").click()

    replay = Execution.objects.get(replay_of=finished_run)
    expect(page).to_have_url(re.compile(rf"/{re.escape(quote(replay.pk))}/change/$"))
    expect(page.locator(".messagelist")).to_contain_text(f"This run replays {finished_run.pk}")
    expect(page.locator(".af-run-head .af-status")).to_have_text("Succeeded", timeout=TIMEOUT_MS)
    origin = page.locator(".af-replay-of a")
    expect(origin).to_have_text(finished_run.pk)
    badges = page.locator("li.af-attempt .af-badge-replayed")
    expect(badges).to_have_count(3)
    polish = page.locator('li.af-attempt[data-node-id="polish"]')
    expect(polish.locator(".af-badge-replayed")).to_have_text("replayed")
    expect(polish.locator(".af-was")).to_contain_text(re.compile(r"was \d+ tokens, \$0\.0"))
    expect(polish).to_contain_text("0 tokens · cost 0")
    browser_page.screenshot("replay")
    assert calls(openai_server) == 3  # the original's: the replay called nothing
    assert browser_page.errors == []
    assert browser_page.foreign_requests() == []

    with page.expect_navigation():
        origin.click()
    expect(page.locator(".af-run-head .af-replay-of")).to_have_count(0)
    expect(page.locator(".af-badge-replayed")).to_have_count(0)
    expect(page.locator(".af-run-head .af-replays a")).to_have_text(replay.pk)
    browser_page.screenshot("original", page.locator("#af-run"))
