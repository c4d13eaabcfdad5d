"""A staff user opens the health dashboard in a real browser: numbers, charts, live updates."""

import re
from typing import Any

import pytest

from tests.browser.conftest import BrowserPage, Staff
from tests.conftest import issue_key

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says so: a failure under CI, a skip elsewhere
    expect = None  # type: ignore[assignment]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PAGE = "/admin/agentflow_site/metricsample/"


def test_the_health_dashboard_draws_its_charts_and_keeps_them_up_to_date(
    browser_page: BrowserPage, staff: Staff, settings: Any
) -> None:
    from rest_framework.test import APIClient

    from tenants.services import tenant_create

    settings.AGENTFLOW_HEALTH_SAMPLE_SECONDS = 1  # each update of the page takes a new sample
    api = APIClient()
    api.credentials(
        HTTP_X_API_KEY=issue_key(tenant_create(slug="acme", name="Acme"), "viewer").secret
    )
    page = browser_page.page
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))  # not a request of ours
    browser_page.login(staff, PAGE)  # its first sample: what the page counts from
    expect(page.locator("h1")).to_have_text("Health dashboard")
    expect(page.locator("#af-requests")).to_have_text("0")
    expect(page.locator("#af-database")).to_contain_text("ok")
    expect(page.locator("svg.af-chart")).to_have_count(10)

    for _ in range(3):
        assert api.get("/api/v1/workflows").status_code == 200
    assert api.get("/api/v1/executions/exec_nope").status_code == 404
    # counted at the page's next update, without a reload
    expect(page.locator("#af-health-updated")).to_contain_text("Last updated", timeout=15_000)
    expect(page.locator("#af-requests")).to_have_text(re.compile(r"^4 "), timeout=15_000)
    expect(page.locator("#af-client-errors")).to_have_text("1")
    drawn = page.locator('svg[aria-label="Requests"] g.af-series').locator("polyline, circle")
    expect(drawn.first).to_be_visible()
    expect(page.locator('svg[aria-label="Requests"] text.af-legend')).to_contain_text("req/s")
    browser_page.screenshot("dashboard")

    page.click("text=Last day")
    expect(page.locator("#af-requests")).to_have_text(re.compile(r"^4 "))
    assert browser_page.foreign_requests() == []
    assert browser_page.errors == []
