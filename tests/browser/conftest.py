"""Browser tests: Playwright for Python driving the system's Chromium (headless) against a live
server (pytest-django's `live_server`, on the test database).

One browser for the package, a fresh context (cookies, storage) per test. `browser_page` gives
the page with every request it made and a `screenshot(name)` that saves under
tests/artifacts/ (git-ignored; `AGENTFLOW_TEST_ARTIFACTS` moves it) and prints where.

Chromium comes from the system's packages (`make test` installs it when it is missing,
scripts/ensure_packages.py). Under CI=true a missing browser or Playwright fails these tests;
elsewhere they are skipped, saying why.
"""

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from tests.conftest import IN_CI

CHROMIUM = os.environ.get("AGENTFLOW_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get("AGENTFLOW_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")
)
TIMEOUT_MS = 15_000


def _missing(why: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true: {why}", pytrace=False)
    pytest.skip(why)


def _chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if found is None:
        _missing(
            f"no Chromium at {CHROMIUM} (`make test` installs Debian's `chromium`; "
            "or set AGENTFLOW_CHROMIUM)"
        )
    return str(found)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium for every test of the package, closed after the last one."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (the dev extra: `make install-dev`)")
    # Playwright's sync API keeps an asyncio loop running on this thread while it lives, and
    # Django's ORM refuses to run where a loop runs: these tests are synchronous, so say so. The
    # package scope ends the browser (and this) before any other package's tests run.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=executable, headless=True)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class BrowserPage:
    """A page on the live server, and what it asked for."""

    page: Any
    base_url: str
    test_name: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Uncaught script errors, and responses of 400 or more to what the page asked for."""

    def foreign_requests(self) -> list[str]:
        """Requests to any origin but the server's own (data: and blob: URLs stay local)."""
        own = urlsplit(self.base_url)
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "blob", "about")
            and (urlsplit(url).scheme, urlsplit(url).netloc) != (own.scheme, own.netloc)
        ]

    def login(self, user: "Staff", then: str) -> None:
        """Log in through the admin's login form, landing on `then`. The user acts for every
        tenant that exists by then (tenants/staff.py: staff see only their tenants' rows)."""
        act_for_every_tenant(user.username)
        self.page.goto(f"/admin/login/?next={then}")
        self.page.fill("#id_username", user.username)
        self.page.fill("#id_password", user.password)
        with self.page.expect_navigation():
            self.page.click("input[type=submit]")

    def screenshot(self, name: str, locator: Any = None) -> Path:
        """Save a PNG of the whole page (or of `locator`) under the artifacts directory."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.test_name}-{name}")
        path = ARTIFACTS / f"{safe}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if locator is None:
            self.page.screenshot(path=str(path), full_page=True)
        else:
            locator.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def browser_page(
    browser: Any, live_server: Any, request: pytest.FixtureRequest
) -> Iterator[BrowserPage]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    visit = BrowserPage(page, live_server.url, request.node.name)
    context.on("request", lambda r: visit.requests.append(r.url))
    page.on("pageerror", lambda exc: visit.errors.append(str(exc)))
    page.on("response", lambda r: _failed(r, visit.errors))
    yield visit
    context.close()


def _failed(response: Any, errors: list[str]) -> None:
    # the browser asks for /favicon.ico by itself; the pages do not link one
    if response.status >= 400 and urlsplit(response.url).path != "/favicon.ico":
        errors.append(f"{response.status} {response.url}")


@dataclass(frozen=True)
class Staff:
    username: str
    password: str


@pytest.fixture
def staff(transactional_db: None) -> Staff:
    """A staff user (not a superuser) who may view workflows and their versions."""
    password = secrets.token_urlsafe(16)
    user = get_user_model().objects.create_user(
        f"staff-{secrets.token_hex(4)}", "staff@example.com", password, is_staff=True
    )
    names = ("view_workflow", "view_workflowversion")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="workflows", codename__in=names)
    )
    return Staff(user.get_username(), password)


def act_for_every_tenant(username: str) -> None:
    """Make the staff user `username` act (as an executor) for every tenant there is now."""
    from tenants.models import StaffMembership, Tenant

    user = get_user_model().objects.get(username=username)
    for tenant in Tenant.objects.all():
        StaffMembership.objects.get_or_create(
            user=user, tenant=tenant, defaults={"role": "executor"}
        )
