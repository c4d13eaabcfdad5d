"""The fixed cast: `tenant`, `other_tenant`, and keys of each role (`admin_key`, `viewer_key`, …).

A key fixture gives an `IssuedKey`: the stored row and the secret a client sends.
"""

import atexit
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from tenants.models import ApiKey, Role, Tenant
from tenants.services import api_key_create, tenant_create

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# This test process's metrics samples (and those of the stacks it starts) apart from any other's.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="agentflow-test-metrics-")
atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
SETUP_ACTOR = "test-setup"
"""Who the fixtures' keys are audited as (audit tests leave those events out)."""


@dataclass(frozen=True)
class IssuedKey:
    row: ApiKey
    secret: str

    @property
    def prefix(self) -> str:
        return self.row.prefix


def issue_key(tenant: Tenant, role: str, **kwargs: object) -> IssuedKey:
    kwargs.setdefault("actor", SETUP_ACTOR)
    row, secret = api_key_create(tenant=tenant, role=role, **kwargs)  # type: ignore[arg-type]
    return IssuedKey(row, secret)


@pytest.fixture
def tenant(db: None) -> Tenant:
    return tenant_create(slug="acme", name="Acme Corp")


@pytest.fixture
def other_tenant(db: None) -> Tenant:
    return tenant_create(slug="globex", name="Globex")


@pytest.fixture
def admin_key(tenant: Tenant) -> IssuedKey:
    return issue_key(tenant, Role.ADMIN, name="acme admin")


@pytest.fixture
def developer_key(tenant: Tenant) -> IssuedKey:
    return issue_key(tenant, Role.DEVELOPER, name="acme dev")


@pytest.fixture
def executor_key(tenant: Tenant) -> IssuedKey:
    return issue_key(tenant, Role.EXECUTOR, name="acme runner")


@pytest.fixture
def viewer_key(tenant: Tenant) -> IssuedKey:
    return issue_key(tenant, Role.VIEWER, name="acme viewer")


@pytest.fixture
def other_admin_key(other_tenant: Tenant) -> IssuedKey:
    return issue_key(other_tenant, Role.ADMIN, name="globex admin")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def client_for(key: IssuedKey) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key.secret)
    return client


@pytest.fixture
def requires_redis() -> str:
    """The Redis URL under test. Under CI a missing Redis is a failure, never a skip."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("CI=true but REDIS_URL is not set: Redis tests cannot run.")
        pytest.skip("REDIS_URL is not set (make test points it at the local Redis).")
    return url


# Fake provider servers (OpenAI, Azure, Anthropic, Gemini) on 127.0.0.1, driven by the real SDKs.
@pytest.fixture(autouse=True)
def _events_on_the_test_thread(settings) -> None:
    """A test's rows are in its own transaction, on its own thread: event streams read there."""
    settings.EVENTS_READ_ON_CALLER_THREAD = True


@pytest.fixture
def admin_client(db: None) -> Client:
    """A browser logged in to the admin as a superuser of its own (pytest-django's fixture
    reuses any user named "admin" it finds, whatever that user's state)."""
    user = get_user_model().objects.create_superuser(
        f"admin-{secrets.token_hex(4)}", "admin@example.com", secrets.token_urlsafe(16)
    )
    client = Client()
    client.force_login(user)
    return client


from tests.fakes.fixtures import anthropic_server, gemini_server, openai_server  # noqa: E402, F401
