from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from tenants.models import Role
from tenants.services import api_key_revoke
from tests.conftest import IssuedKey, client_for, issue_key

pytestmark = pytest.mark.django_db
ME = "/api/v1/me"


def _assert_401(response, detail_part: str) -> None:
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'
    body = response.json()
    assert body["status"] == 401
    assert detail_part in body["detail"]


def test_it_tells_a_valid_key_its_tenant_role_and_expiry(admin_key: IssuedKey) -> None:
    response = client_for(admin_key).get(ME)
    assert response.status_code == 200
    assert response.json() == {
        "tenant": "acme",
        "tenant_name": "Acme Corp",
        "role": "admin",
        "key_prefix": admin_key.prefix,
        "key_name": "acme admin",
        "expires_at": None,
        "user": None,
    }


def test_it_accepts_the_authorization_api_key_scheme(api, viewer_key: IssuedKey) -> None:
    response = api.get(ME, HTTP_AUTHORIZATION=f"Api-Key {viewer_key.secret}")
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"


def test_a_missing_key_gets_401_saying_where_to_put_it(api) -> None:
    _assert_401(api.get(ME), "X-API-Key")


def test_a_bearer_token_is_not_an_api_key(api, viewer_key: IssuedKey) -> None:
    _assert_401(api.get(ME, HTTP_AUTHORIZATION=f"Bearer {viewer_key.secret}"), "X-API-Key")


@pytest.mark.parametrize("garbage", ["nope", "abc.def", ".", "x" * 500, "ÄÖÜ.ß", "a.b.c"])
def test_a_garbage_key_gets_401(api, garbage: str) -> None:
    _assert_401(api.get(ME, HTTP_X_API_KEY=garbage), "not valid")


def test_a_right_prefix_with_a_wrong_secret_gets_401(api, admin_key: IssuedKey) -> None:
    forged = admin_key.prefix + "." + "A" * 32
    _assert_401(api.get(ME, HTTP_X_API_KEY=forged), "not valid")


def test_a_revoked_key_gets_401(admin_key: IssuedKey) -> None:
    api_key_revoke(api_key=admin_key.row)
    _assert_401(client_for(admin_key).get(ME), "revoked")


def test_an_expired_key_gets_401(tenant) -> None:
    key = issue_key(tenant, Role.ADMIN, expires_at=timezone.now() + timedelta(hours=1))
    assert client_for(key).get(ME).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        _assert_401(client_for(key).get(ME), "expired")


def test_a_disabled_tenants_keys_get_401(tenant, admin_key: IssuedKey) -> None:
    tenant.is_active = False
    tenant.save()
    _assert_401(client_for(admin_key).get(ME), "disabled")


def test_only_the_hash_of_a_key_is_stored(admin_key: IssuedKey) -> None:
    admin_key.row.refresh_from_db()
    secret = admin_key.secret.partition(".")[2]
    assert secret not in admin_key.row.hashed_key
    assert secret not in admin_key.row.id
