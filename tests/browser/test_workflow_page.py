"""A staff user opens a workflow in the admin, in a real browser, and sees its graph."""

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.utils import quote

from tenants.services import tenant_create
from tests.browser.conftest import BrowserPage, Staff
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_update

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says so: a failure under CI, a skip elsewhere
    expect = None  # type: ignore[assignment]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


@pytest.fixture
def support_desk(settings: Any) -> Workflow:
    settings.AGENTFLOW_ALLOWED_ENV = ["OPENAI_API_KEY", "SHOP_DATABASE_URL"]
    tenant = tenant_create(slug="acme", name="Acme Corp")
    return workflow_create(tenant=tenant, spec=example("support-desk"), actor="key:setup")


def change_url(workflow: Workflow) -> str:
    # quote(): the admin reads "_25" in an id as an escaped "%"
    return f"/admin/workflows/workflow/{quote(workflow.id)}/change/"


def test_a_workflow_page_shows_its_graph_with_every_node(
    browser_page: BrowserPage, staff: Staff, support_desk: Workflow
) -> None:
    page = browser_page.page
    browser_page.login(staff, change_url(support_desk))
    graph = page.locator("svg.af-graph")
    expect(graph).to_be_visible()
    node_ids = [n["id"] for n in example("support-desk")["nodes"]]
    expect(graph.locator("text.af-node-id")).to_have_text(node_ids)
    for node_id in node_ids:  # each box is drawn where a person can see it, not just present
        box = graph.locator(f'g.af-node[data-node-id="{node_id}"]')
        expect(box).to_be_visible()
        found = box.bounding_box()
        assert found is not None and found["width"] > 40
    expect(graph.locator("text.af-condition")).to_have_text(["image", "data", "text"])
    expect(graph.locator("text.af-queue").first).to_have_text("queue image-lane")
    expect(graph.locator('g.af-node[data-start="true"]')).to_have_attribute("data-node-id", "input")
    browser_page.screenshot("graph", graph)
    browser_page.screenshot("page")
    assert browser_page.errors == []


def test_a_saved_version_has_its_own_picture(
    browser_page: BrowserPage, staff: Staff, support_desk: Workflow
) -> None:
    spec = example("support-desk")
    spec["nodes"].append({"id": "audit", "type": "aggregator", "metadata": {"strategy": "merge"}})
    spec["edges"].append({"from": "answer", "to": "audit"})
    workflow_update(workflow=support_desk, spec=spec, actor="key:setup")
    page = browser_page.page
    browser_page.login(staff, change_url(support_desk))
    expect(page.locator("svg.af-graph text.af-node-id", has_text="audit")).to_be_visible()
    page.get_by_role("link", name="picture and spec of v1").click()
    expect(page.locator("#content-main")).to_contain_text("Version 1, saved")
    graph = page.locator("svg.af-graph")
    expect(graph.locator("text.af-node-id")).to_have_count(6)
    expect(graph.locator("text.af-node-id", has_text="audit")).to_have_count(0)
    browser_page.screenshot("version-1")


def test_the_pages_ask_only_their_own_server(
    browser_page: BrowserPage, staff: Staff, support_desk: Workflow
) -> None:
    page = browser_page.page
    browser_page.login(staff, change_url(support_desk))
    expect(page.locator("svg.af-graph")).to_be_visible()
    page.goto(f"/admin/workflows/workflow/{quote(support_desk.id)}/versions/1/")
    expect(page.locator("svg.af-graph")).to_be_visible()
    page.goto("/admin/workflows/workflow/")
    expect(page.get_by_text("support-desk")).to_be_visible()
    assert any("/static/admin/css/" in url for url in browser_page.requests)  # it did load
    assert browser_page.foreign_requests() == []
