import pytest
from rest_framework.test import APIClient

from tests.conftest import IssuedKey, client_for

pytestmark = pytest.mark.django_db
KEYS = "/api/v1/keys"


def test_an_admin_creates_a_key_that_is_shown_once_and_works(admin_key: IssuedKey) -> None:
    admin = client_for(admin_key)
    created = admin.post(KEYS, {"name": "ci runner", "role": "executor"}, format="json")
    assert created.status_code == 201
    secret = created.json()["key"]
    me = APIClient().get("/api/v1/me", HTTP_X_API_KEY=secret)
    assert me.json()["role"] == "executor"
    listed = admin.get(KEYS).json()
    assert listed["count"] == 2
    assert all("key" not in row for row in listed["results"])
    assert secret not in str(listed)


def test_a_bad_role_is_a_400_naming_the_field(admin_key: IssuedKey) -> None:
    response = client_for(admin_key).post(KEYS, {"name": "x", "role": "root"}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"field": "role", "message": '"root" is not a valid choice.'}
    ]


def test_an_expiry_in_the_past_is_refused(admin_key: IssuedKey) -> None:
    response = client_for(admin_key).post(
        KEYS, {"name": "x", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "expires_at"


@pytest.mark.parametrize("fixture", ["viewer_key", "executor_key", "developer_key"])
def test_only_an_admin_key_may_create_keys(request, fixture: str) -> None:
    key: IssuedKey = request.getfixturevalue(fixture)
    response = client_for(key).post(KEYS, {"name": "x", "role": "admin"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        f"This needs the 'admin' role; your key has '{key.row.role}'."
    )


def test_a_viewer_key_gets_403_on_a_write(viewer_key: IssuedKey, admin_key: IssuedKey) -> None:
    response = client_for(viewer_key).post(f"{KEYS}/{admin_key.prefix}/revoke")
    assert response.status_code == 403
    admin_key.row.refresh_from_db()
    assert admin_key.row.revoked is False


def test_revoking_through_the_api_locks_the_key_out(admin_key: IssuedKey, viewer_key) -> None:
    admin = client_for(admin_key)
    response = admin.post(f"{KEYS}/{viewer_key.prefix}/revoke")
    assert response.json()["revoked"] is True
    assert client_for(viewer_key).get("/api/v1/me").status_code == 401


def test_another_tenants_key_is_a_404(admin_key: IssuedKey, other_admin_key: IssuedKey) -> None:
    admin = client_for(admin_key)
    assert admin.get(f"{KEYS}/{other_admin_key.prefix}").status_code == 404
    response = admin.post(f"{KEYS}/{other_admin_key.prefix}/revoke")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    other_admin_key.row.refresh_from_db()
    assert other_admin_key.row.revoked is False
    assert other_admin_key.prefix not in str(admin.get(KEYS).json())
