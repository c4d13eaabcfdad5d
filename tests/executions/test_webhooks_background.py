"""A completion webhook end to end: uvicorn takes the request, a run worker runs it, its end
wakes django-q2, and `qcluster` POSTs the signed outcome to a listener on 127.0.0.1."""

import hashlib
import hmac
import json
from pathlib import Path

import httpx2
import pytest

from executions.models import WebhookDelivery, WebhookSecret
from tenants.models import Tenant
from tests.conftest import issue_key
from tests.runtime.http.servers import json_reply, serving
from tests.stack import Stack, stack_env, wait_for
from tests.workflows.test_workflows_api import greeter

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_workers_run_posts_its_webhook_through_qcluster(tmp_path: Path, tenant: Tenant) -> None:
    stack = Stack(stack_env(tmp_path, Q_WORKERS="1"), tmp_path)
    try:
        with serving() as receiver:
            receiver.route("/hook", lambda seen: json_reply(200, {}))
            tenant.trusted_hosts = [f"127.0.0.1:{receiver.port}"]
            tenant.save()
            key = issue_key(tenant, "executor")
            stack.web()
            stack.worker()
            stack.qcluster()
            answer = httpx2.post(
                f"{stack.url}/api/v1/workflows/execute",
                json={
                    "workflow": greeter(),
                    "initial_state": {"user_input": "hi"},
                    "mode": "async",
                    "callback_url": f"{receiver.url}/hook",
                },
                headers={"X-API-Key": key.secret},
                timeout=30,
            )
            assert answer.status_code == 202, answer.text
            execution_id = answer.json()["execution_id"]
            wait_for(lambda: receiver.seen, 60, "the webhook")
            delivered = WebhookDelivery.objects.filter(pk=execution_id, state="delivered")
            wait_for(delivered.exists, 30, "the delivery recorded")
    finally:
        stack.stop()
    [seen] = receiver.seen
    secret = WebhookSecret.objects.get(tenant=tenant).secret
    t, v1 = (part.split("=", 1)[1] for part in seen.headers["x-agentflow-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{t}.".encode() + seen.body, hashlib.sha256)
    assert hmac.compare_digest(v1, expected.hexdigest())
    body = json.loads(seen.body)
    assert body["execution_id"] == execution_id and body["status"] == "succeeded"
    assert body["final_state"]["final_output"] == "v1: hi"
