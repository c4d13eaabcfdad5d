from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tenants.models import ApiKey, Tenant
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_createapikey_prints_the_key_alone_and_it_works() -> None:
    assert run("createtenant", "initech", "--name", "Initech").strip() == "initech"
    output = run("createapikey", "--tenant", "initech", "--role", "developer")
    assert output.count("\n") == 1
    key = output.strip()
    row = ApiKey.objects.get(prefix=key.partition(".")[0])
    assert row.tenant.slug == "initech"
    assert row.role == "developer"

    class _Key:  # the shape client_for needs
        secret = key

    assert client_for(_Key).get("/api/v1/me").json()["tenant"] == "initech"  # type: ignore[arg-type]


def test_createapikey_takes_an_expiry_as_a_duration() -> None:
    Tenant.objects.create(slug="initech", name="Initech")
    key = run("createapikey", "--tenant", "initech", "--role", "viewer", "--expires", "30d").strip()
    row = ApiKey.objects.get(prefix=key.partition(".")[0])
    assert row.expiry_date is not None
    assert 29 < (row.expiry_date - timezone.now()).days + 1 <= 30


def test_createapikey_explains_a_bad_expiry_and_an_unknown_tenant() -> None:
    Tenant.objects.create(slug="initech", name="Initech")
    with pytest.raises(CommandError, match="neither a duration"):
        run("createapikey", "--tenant", "initech", "--role", "viewer", "--expires", "soon")
    with pytest.raises(CommandError, match="No tenant 'nobody'"):
        run("createapikey", "--tenant", "nobody", "--role", "viewer")
    assert ApiKey.objects.count() == 0


def test_createtenant_refuses_a_duplicate_and_a_bad_slug() -> None:
    run("createtenant", "initech")
    with pytest.raises(CommandError, match="already exists"):
        run("createtenant", "initech")
    with pytest.raises(CommandError, match="lowercase"):
        run("createtenant", "Bad Name")


def test_revokeapikey_takes_the_prefix_or_the_whole_key(admin_key, viewer_key) -> None:
    assert "revoked" in run("revokeapikey", admin_key.prefix)
    run("revokeapikey", viewer_key.secret)
    assert client_for(admin_key).get("/api/v1/me").status_code == 401
    assert client_for(viewer_key).get("/api/v1/me").status_code == 401
    with pytest.raises(CommandError, match="No API key"):
        run("revokeapikey", "zzzzzzzz")
