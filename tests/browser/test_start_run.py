"""A staff user starts a run of a stored workflow from its admin page, in a real browser, lands
on the run's page showing it succeeded, and finds it on the start page (`/`)."""

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from executions.models import Execution
from tenants.management.commands.demo_catalogue import write_catalogue
from tenants.services import tenant_create
from tests.browser.conftest import TIMEOUT_MS, BrowserPage, Staff
from workflows.models import Workflow
from workflows.services import workflow_create

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says so: a failure under CI, a skip elsewhere
    expect = None  # type: ignore[assignment]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUNNER_PERMS = ("view_workflow", "view_workflowversion", "view_execution", "add_execution")


@pytest.fixture
def runner(transactional_db: None) -> Staff:
    """Staff (not a superuser) who may view workflows and runs, and start runs."""
    password = secrets.token_urlsafe(16)
    user = get_user_model().objects.create_user(
        f"runner-{secrets.token_hex(4)}", "run@example.com", password, is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=RUNNER_PERMS))
    return Staff(user.get_username(), password)


@pytest.fixture
def offline_demo(settings: Any, tmp_path: Path) -> Workflow:
    tenant = tenant_create(slug="acme", name="Acme Corp")
    settings.AGENTFLOW_SQLITE_ROOT = tmp_path  # the live server's thread reads the same settings
    write_catalogue(tmp_path / f"t{tenant.pk}" / "demo.sqlite3")
    spec = json.loads((EXAMPLES / "offline-demo.json").read_text())
    return workflow_create(tenant=tenant, spec=spec, actor="key:setup")


def test_start_a_run_from_the_workflow_page_and_land_on_it(
    browser_page: BrowserPage, runner: Staff, offline_demo: Workflow
) -> None:
    page = browser_page.page
    browser_page.login(runner, f"/admin/workflows/workflow/{quote(offline_demo.pk)}/change/")
    page.get_by_role("link", name="Start a run").click()
    expect(page.locator("h1")).to_have_text("Run offline-demo", timeout=TIMEOUT_MS)
    expect(page.get_by_label("Version")).to_have_value("1")
    expect(page.get_by_label("Initial state (JSON)")).to_have_value("{}")
    page.get_by_label("user_input").fill("any prices?")  # the input node's required key
    expect(page.get_by_label("Now, here: wait for the end")).to_be_checked()
    browser_page.screenshot("form")
    page.get_by_role("button", name="Start the run").click()
    expect(page).to_have_url(re.compile(r"/admin/executions/execution/exec_[^/]+/change/$"))
    expect(page.locator(".af-status").first).to_have_text("Succeeded", timeout=TIMEOUT_MS)
    expect(page.get_by_text("any prices?").first).to_be_visible()
    browser_page.screenshot("run")
    execution = Execution.objects.get()
    assert execution.created_by == f"staff:{runner.username}"
    assert page.url.endswith(f"/{quote(execution.pk)}/change/")
    assert browser_page.errors == []
    assert browser_page.foreign_requests() == []


def test_the_start_page_lists_the_run_for_staff_and_nothing_for_others(
    browser_page: BrowserPage, runner: Staff, offline_demo: Workflow
) -> None:
    page = browser_page.page
    page.goto("/")
    expect(page.get_by_role("link", name="Log in")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("link", name="API reference (Redoc)")).to_be_visible()
    expect(page.get_by_text("Recent runs")).to_have_count(0)
    browser_page.screenshot("anonymous")
    browser_page.login(runner, f"/admin/workflows/workflow/{quote(offline_demo.pk)}/run/")
    page.get_by_label("user_input").fill("hello")
    page.get_by_role("button", name="Start the run").click()
    expect(page.locator(".af-status").first).to_have_text("Succeeded", timeout=TIMEOUT_MS)
    page.goto("/")
    runs = page.locator("#recent-runs")
    execution = Execution.objects.get()
    expect(runs.get_by_role("link", name=execution.pk)).to_be_visible()
    expect(runs).to_contain_text(f"staff:{runner.username}")
    expect(page.locator("#failing-workflows")).to_contain_text("No workflow failed lately.")
    browser_page.screenshot("staff")
    runs.get_by_role("link", name=execution.pk).click()
    expect(page.locator(".af-status").first).to_have_text("Succeeded", timeout=TIMEOUT_MS)
    assert browser_page.errors == []
    assert browser_page.foreign_requests() == []
