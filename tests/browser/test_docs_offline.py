"""The API docs (Swagger UI and Redoc) work with no network: every script, style, font and
picture they load comes from the server's own static files."""

import pytest
from django.test import Client

from tests.browser.conftest import BrowserPage

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says so: a failure under CI, a skip elsewhere
    expect = None  # type: ignore[assignment]

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TITLE = "AgentFlow API"
WAIT_MS = 15_000


def refused_by_the_browser(browser_page: BrowserPage) -> list[str]:
    """Start recording what the browser refused to fetch under the page's security policy."""
    refused: list[str] = []
    browser_page.page.on(
        "requestfailed", lambda r: refused.append(r.url) if r.failure == "csp" else None
    )
    return refused


def test_swagger_ui_renders_the_api_from_its_own_server(browser_page: BrowserPage) -> None:
    page = browser_page.page
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text(TITLE, timeout=WAIT_MS)
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    browser_page.screenshot("swagger")
    assert any(
        "/static/drf_spectacular_sidecar/swagger-ui-dist/" in u for u in browser_page.requests
    )
    assert browser_page.foreign_requests() == []
    assert browser_page.errors == []


def test_redoc_renders_the_api_from_its_own_server(browser_page: BrowserPage) -> None:
    page = browser_page.page
    refused = refused_by_the_browser(browser_page)
    page.goto("/api/redoc/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(TITLE, timeout=WAIT_MS)
    expect(page.get_by_text("Draw a workflow spec").first).to_be_attached()
    page.wait_for_load_state("networkidle")
    heading = page.get_by_role("heading", level=1)
    browser_page.screenshot("redoc", heading.locator("xpath=ancestor::div[2]"))
    assert any("/static/drf_spectacular_sidecar/redoc/" in u for u in browser_page.requests)
    # Redoc's bundle always asks for its maker's logo on cdn.redoc.ly; the page's policy makes
    # the browser refuse it before it leaves, so nothing but the server itself is ever asked.
    assert set(browser_page.foreign_requests()) <= set(refused)
    assert set(refused) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
    assert browser_page.errors == []


def test_the_docs_pages_name_no_other_host() -> None:
    """Also what is only linked (a preconnect, a font stylesheet), not just what was fetched."""
    for url in ("/api/docs/", "/api/redoc/"):
        response = Client().get(url)
        html = response.content.decode()
        assert "https://" not in html and "http://" not in html, url
        # and the browser is told to fetch from nowhere else (Redoc's bundle names a CDN logo)
        assert "img-src 'self' data:" in response["Content-Security-Policy"], url
