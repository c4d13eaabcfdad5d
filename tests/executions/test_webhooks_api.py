"""Completion webhooks: an execute request's `callback_url` gets the run's outcome, signed with
the tenant's secret, through the egress door, retried with backoff; all visible on the run."""

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from executions.models import WebhookDelivery
from executions.webhooks import retry_delay, webhooks_deliver_due
from tenants.models import AuditEvent, Tenant
from tests.conftest import IssuedKey, client_for
from tests.runtime.http.servers import Reply, Seen, Server, json_reply, serving
from tests.workflows.test_workflows_api import create, greeter

pytestmark = pytest.mark.django_db
EXECUTE = "/api/v1/workflows/execute"
SECRET = "/api/v1/webhook-secret"


def trusting(tenant: Tenant, server: Server) -> None:
    tenant.trusted_hosts = [f"127.0.0.1:{server.port}"]
    tenant.save()


def execute(key: IssuedKey, callback_url: str, **body: Any) -> Any:
    body = {"workflow": greeter(), "initial_state": {"user_input": "hi"}, **body}
    return client_for(key).post(EXECUTE, {**body, "callback_url": callback_url}, format="json")


def verified(seen: Seen, secret: str, now: datetime) -> dict[str, Any]:
    """The body, once its signature is checked as a receiver would."""
    fields = dict(part.split("=", 1) for part in seen.headers["x-agentflow-signature"].split(","))
    assert int(fields["t"]) == int(now.timestamp())
    signed = fields["t"].encode() + b"." + seen.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    body: dict[str, Any] = json.loads(seen.body)
    return body


def webhook_of(key: IssuedKey, execution_id: str) -> dict[str, Any]:
    shown = client_for(key).get(f"/api/v1/executions/{execution_id}").json()
    webhook: dict[str, Any] = shown["webhook"]
    return webhook


def test_a_finished_run_posts_its_signed_outcome_to_the_callback_url(
    tenant: Tenant,
    executor_key: IssuedKey,
    admin_key: IssuedKey,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    woken: list[str] = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, **_: woken.append(func))
    with serving() as receiver:
        receiver.route("/hooks/agentflow", lambda seen: json_reply(200, {"ok": True}))
        trusting(tenant, receiver)
        with django_capture_on_commit_callbacks(execute=True):
            response = execute(executor_key, f"{receiver.url}/hooks/agentflow?token=abc")
        assert response.status_code == 200, response.json()
        execution_id = response.json()["execution_id"]
        assert woken == ["executions.tasks.deliver_webhooks"]  # the run's end woke django-q2
        assert receiver.seen == []  # not on the run's path: a django-q2 task sends it
        now = timezone.now()
        assert webhooks_deliver_due(now=now) == 1
        assert webhooks_deliver_due(now=now) == 0  # sent once
    secret = client_for(admin_key).get(SECRET).json()["secret"]
    [seen] = receiver.seen
    assert seen.method == "POST" and seen.path == "/hooks/agentflow?token=abc"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-agentflow-event"] == "execution.finished"
    body = verified(seen, secret, now)
    assert body["execution_id"] == execution_id and body["status"] == "succeeded"
    assert body["final_state"]["final_output"] == "v1: hi"
    assert body["error"] is None and body["tokens_used"] == 0 and body["cost"] == 0
    assert body["finished_at"] and body["started_at"] and body["created_at"]
    webhook = webhook_of(executor_key, execution_id)
    assert webhook["state"] == "delivered" and webhook["attempts"] == 1
    assert webhook["last_status"] == 200 and webhook["url"] == f"{receiver.url}/hooks/agentflow"


def test_a_receiver_answering_500_gets_the_retry_after_the_backoff(
    tenant: Tenant, executor_key: IssuedKey, admin_key: IssuedKey
) -> None:
    answers = iter([500, 200])

    def flaky(seen: Seen) -> Reply:
        return json_reply(next(answers), {})

    with serving() as receiver:
        receiver.route("/hook", flaky)
        trusting(tenant, receiver)
        execution_id = execute(executor_key, f"{receiver.url}/hook").json()["execution_id"]
        t0 = timezone.now()
        assert webhooks_deliver_due(now=t0) == 1
        webhook = webhook_of(executor_key, execution_id)
        assert webhook["state"] == "pending" and webhook["attempts"] == 1
        assert webhook["last_status"] == 500 and "500" in webhook["last_error"]
        retry_at = datetime.fromisoformat(webhook["next_attempt_at"])
        assert retry_at == t0 + timedelta(seconds=retry_delay(1))
        assert webhooks_deliver_due(now=retry_at - timedelta(seconds=1)) == 0  # not yet
        assert webhooks_deliver_due(now=retry_at) == 1
    secret = client_for(admin_key).get(SECRET).json()["secret"]
    first, second = receiver.seen
    assert verified(first, secret, t0) == verified(second, secret, retry_at)
    assert first.headers["x-agentflow-delivery"] == second.headers["x-agentflow-delivery"]
    assert (first.headers["x-agentflow-attempt"], second.headers["x-agentflow-attempt"]) == (
        "1",
        "2",
    )
    webhook = webhook_of(executor_key, execution_id)
    assert webhook["state"] == "delivered" and webhook["attempts"] == 2
    assert webhook["last_status"] == 200 and webhook["next_attempt_at"] is None


def test_the_backoff_doubles_and_the_attempts_are_bounded(
    tenant: Tenant, executor_key: IssuedKey, settings: Any
) -> None:
    settings.AGENTFLOW_WEBHOOK_MAX_ATTEMPTS = 3
    assert [retry_delay(n) for n in (1, 2, 3)] == [30, 60, 120]
    assert retry_delay(20) == 3600
    with serving() as receiver:
        receiver.route("/hook", lambda seen: json_reply(503, {}))
        trusting(tenant, receiver)
        execution_id = execute(executor_key, f"{receiver.url}/hook").json()["execution_id"]
        now = timezone.now()
        for _ in range(5):
            webhooks_deliver_due(now=now)
            now += timedelta(hours=2)
    assert len(receiver.seen) == 3
    webhook = webhook_of(executor_key, execution_id)
    assert webhook["state"] == "failed" and webhook["attempts"] == 3
    assert webhook["last_status"] == 503


def test_a_receiver_that_does_not_answer_in_time_is_retried(
    tenant: Tenant, executor_key: IssuedKey, settings: Any
) -> None:
    settings.AGENTFLOW_WEBHOOK_TIMEOUT = 0.3

    def slow(seen: Seen) -> Reply:
        time.sleep(1)
        return json_reply(200, {})

    with serving() as receiver:
        receiver.route("/hook", slow)
        trusting(tenant, receiver)
        execution_id = execute(executor_key, f"{receiver.url}/hook").json()["execution_id"]
        started = time.monotonic()
        webhooks_deliver_due()
        assert time.monotonic() - started < 0.9
    webhook = webhook_of(executor_key, execution_id)
    assert webhook["state"] == "pending" and webhook["last_status"] is None
    assert "No answer within" in webhook["last_error"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",  # cloud metadata: never
        "http://127.0.0.1:9/hook",  # loopback the tenant does not trust
        "http://localhost/hook",
        "ftp://example.com/hook",
        "not a url",
    ],
)
def test_a_callback_url_the_tenant_may_not_reach_is_a_422_naming_it(
    executor_key: IssuedKey, url: str
) -> None:
    response = execute(executor_key, url)
    assert response.status_code == 422, response.json()
    assert [e["field"] for e in response.json()["errors"]] == ["callback_url"]
    assert not WebhookDelivery.objects.exists()


def test_an_async_run_posts_when_it_ends_not_before(
    tenant: Tenant, executor_key: IssuedKey, developer_key: IssuedKey
) -> None:
    workflow = create(developer_key)["id"]
    with serving() as receiver:
        receiver.route("/hook", lambda seen: json_reply(204, {}))
        trusting(tenant, receiver)
        response = client_for(executor_key).post(
            f"/api/v1/workflows/{workflow}/execute",
            {
                "mode": "async",
                "initial_state": {"user_input": "x"},
                "callback_url": receiver.url + "/hook",
            },
            format="json",
        )
        assert response.status_code == 202
        execution_id = response.json()["execution_id"]
        assert webhooks_deliver_due() == 0  # queued: nothing to say yet
        assert webhook_of(executor_key, execution_id)["state"] == "pending"
        cancel = client_for(executor_key).post(f"/api/v1/executions/{execution_id}/cancel")
        assert cancel.status_code == 200
        assert webhooks_deliver_due() == 1
    [seen] = receiver.seen
    body = json.loads(seen.body)
    assert body["status"] == "cancelled" and body["error"]["code"] == "cancelled"
    assert webhook_of(executor_key, execution_id)["state"] == "delivered"


def test_a_run_without_a_callback_shows_no_webhook(executor_key: IssuedKey) -> None:
    response = client_for(executor_key).post(
        EXECUTE, {"workflow": greeter(), "initial_state": {"user_input": "x"}}, format="json"
    )
    assert webhook_of_or_none(executor_key, response.json()["execution_id"]) is None


def webhook_of_or_none(key: IssuedKey, execution_id: str) -> Any:
    return client_for(key).get(f"/api/v1/executions/{execution_id}").json()["webhook"]


def test_the_secret_is_made_on_first_read_rotated_by_an_admin_and_audited(
    tenant: Tenant, admin_key: IssuedKey, developer_key: IssuedKey, other_admin_key: IssuedKey
) -> None:
    assert client_for(developer_key).get(SECRET).status_code == 403
    assert client_for(developer_key).post(SECRET).status_code == 403
    first = client_for(admin_key).get(SECRET).json()
    assert first["secret"].startswith("whsec_") and first["rotated_at"] is None
    assert client_for(admin_key).get(SECRET).json()["secret"] == first["secret"]
    assert client_for(other_admin_key).get(SECRET).json()["secret"] != first["secret"]
    rotated = client_for(admin_key).post(SECRET)
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != first["secret"] and rotated.json()["rotated_at"]
    assert client_for(admin_key).get(SECRET).json()["secret"] == rotated.json()["secret"]
    actions = set(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert {"webhook_secret.create", "webhook_secret.rotate"} <= actions


def test_a_large_final_state_is_left_out_of_the_body(
    tenant: Tenant, executor_key: IssuedKey
) -> None:
    with serving() as receiver:
        receiver.route("/hook", lambda seen: json_reply(200, {}))
        trusting(tenant, receiver)
        big = "x" * (300 * 1024)
        execute(executor_key, f"{receiver.url}/hook", initial_state={"user_input": big})
        webhooks_deliver_due()
    body = json.loads(receiver.seen[0].body)
    assert body["final_state"] is None and body["final_state_omitted"] is True
    assert body["url"] == f"/api/v1/executions/{body['execution_id']}"


def test_a_delivery_leased_by_one_sweep_is_not_sent_by_another(
    tenant: Tenant, executor_key: IssuedKey
) -> None:
    from executions.webhooks import _take_due

    with serving() as receiver:
        receiver.route("/hook", lambda seen: json_reply(200, {}))
        trusting(tenant, receiver)
        execute(executor_key, f"{receiver.url}/hook")
        now = timezone.now()
        assert len(_take_due(now)) == 1  # a sweep took it and is sending it
        assert webhooks_deliver_due(now=now) == 0  # another sweep meanwhile: leased
        assert receiver.seen == []
        # The first sweep died mid-send: once its lease ends, the attempt is made again.
        assert webhooks_deliver_due(now=now + timedelta(minutes=5)) == 1
    assert len(receiver.seen) == 1
    assert WebhookDelivery.objects.get().attempts == 2


def test_retries_are_on_django_q2s_minute_schedule() -> None:
    from django_q.models import Schedule

    from executions.tasks import deliver_webhooks

    sweep = Schedule.objects.get(name="agentflow-deliver-webhooks")
    assert sweep.func == "executions.tasks.deliver_webhooks"
    assert sweep.schedule_type == Schedule.CRON and sweep.cron == "* * * * *"
    assert deliver_webhooks() == 0
