import pytest
from django.test import override_settings

from tests.conftest import IssuedKey, client_for, issue_key

pytestmark = pytest.mark.django_db


@override_settings(API_THROTTLE_RATE="3/min")
def test_the_throttle_answers_429_with_retry_after_per_key(admin_key: IssuedKey, tenant) -> None:
    client = client_for(admin_key)
    assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/v1/me")
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60
    assert response.json()["status"] == 429
    # The count is per key: another key of the same tenant is not held back.
    assert client_for(issue_key(tenant, "viewer")).get("/api/v1/me").status_code == 200


def test_an_unknown_api_url_is_a_problem_json_404(api) -> None:
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["instance"] == "/api/v1/nothing-here"


def test_a_body_that_is_not_json_is_a_400(admin_key: IssuedKey) -> None:
    response = client_for(admin_key).post(
        "/api/v1/keys", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "JSON parse error" in response.json()["detail"]


def test_the_request_id_is_kept_and_echoed(admin_key: IssuedKey) -> None:
    response = client_for(admin_key).get("/api/v1/me", HTTP_X_REQUEST_ID="req-1234")
    assert response["X-Request-ID"] == "req-1234"


def test_the_openapi_document_and_its_pages_are_served_offline(api) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    doc = schema.json()
    assert doc["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-API-Key"
    assert "/api/v1/me" in doc["paths"]
    for page in ("/api/docs/", "/api/redoc/"):
        html = api.get(page).content.decode()
        assert "static/drf_spectacular_sidecar" in html  # assets served by us, not a CDN
        assert "cdn.jsdelivr" not in html


def test_a_body_over_the_upload_limit_is_a_problem_json_413(admin_key: IssuedKey) -> None:
    huge = '{"name": "' + "x" * 3_000_000 + '"}'
    response = client_for(admin_key).post(
        "/api/v1/sources", data=huge, content_type="application/json"
    )
    assert response.status_code == 413  # Content Too Large (tests/site/test_no_500.py)
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("debug", [True, False])
def test_an_unexpected_error_is_a_problem_json_500_with_debug_on_or_off(
    admin_key: IssuedKey, monkeypatch, settings, debug: bool
) -> None:
    settings.DEBUG = debug

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("executions.api.usage_report", broken)
    response = client_for(admin_key).get("/api/v1/usage")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 500 and body["type"].endswith("server_error")
    assert "a bug" not in response.content.decode()  # nothing of the inside shown


def test_a_4xx_never_has_the_title_of_a_server_error() -> None:
    from http import HTTPStatus

    from rest_framework import exceptions

    from agentflow_site.errors import _title

    class Refused(exceptions.APIException):
        status_code = 422
        default_code = "refused"

    assert _title(Refused("no"), 422) == HTTPStatus(422).phrase.capitalize()
    assert "server error" not in _title(Refused("no"), 422).lower()
    assert _title(exceptions.APIException(), 500) == "A server error occurred"
