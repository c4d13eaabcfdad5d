"""Completion webhooks: a run's outcome POSTed to the `callback_url` its execute request named.

- Through the egress door (runtime.egress), under the rules of a tenant's http sources: public
  addresses, plus what the operator (AGENTFLOW_TRUSTED_HOSTS) and the tenant's admin-set trusted
  hosts open; cloud metadata never. A URL spelled as a refused address is a 422 at request time;
  a name that resolves to one fails the delivery for good. Redirects are not followed.
- Signed with the tenant's webhook secret (`WebhookSecret`, made on first use) in the manner of
  Stripe and Standard Webhooks: `X-AgentFlow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
  "<t>.<body>" keyed with the secret>`. A receiver recomputes it over the raw body and refuses
  an old `t` (replays).
- Not on the run's path: its end only wakes django-q2 (`deliver_webhooks`, after the end
  commits), whose worker sends; the every-minute schedule sends what is due again. An answer
  other than 2xx, a timeout or a connection failure is retried after
  AGENTFLOW_WEBHOOK_RETRY_SECONDS * 2^(attempt-1) seconds (at most an hour), up to
  AGENTFLOW_WEBHOOK_MAX_ATTEMPTS attempts.
"""

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx2
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from executions.models import FINISHED, Execution, WebhookDelivery, WebhookSecret
from runtime.egress import Egress, EgressPolicy, EgressRefused, OutboundRequest, check_url
from runtime.errors import NodeError
from tenants.models import Tenant
from tenants.services import audit_record

logger = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-AgentFlow-Signature"
EVENT = "execution.finished"
BATCH = 20
"""Deliveries one sweep sends (at once); the next sweep takes the rest."""
MAX_STATE_BYTES = 256 * 1024
"""A final state larger than this is left out of the body (`final_state_omitted`): read it from
the API."""
MAX_ANSWER_BYTES = 64 * 1024
MAX_DELAY_SECONDS = 3600
Sender = Callable[[list[tuple[OutboundRequest, EgressPolicy]]], Coroutine[Any, Any, list["Answer"]]]


class CallbackRefused(Exception):
    """A callback_url AgentFlow will not call; the message says why."""


def egress_policy(tenant: Tenant) -> EgressPolicy:
    """What an http source of the tenant may reach (no source narrows a callback)."""
    return EgressPolicy.of([*settings.AGENTFLOW_TRUSTED_HOSTS, *tenant.trusted_hosts])


def callback_check(url: str, tenant: Tenant) -> None:
    """Refuse, before any lookup, a URL the tenant's http sources could not call.

    Raises:
        CallbackRefused: not http(s), no host, or spelled as (or named like) a refused address.
    """
    try:
        check_url(url, egress_policy(tenant))
    except (EgressRefused, ValueError) as exc:
        raise CallbackRefused(getattr(exc, "message", str(exc))) from None


def webhook_create(*, execution: Execution, url: str) -> WebhookDelivery:
    return WebhookDelivery.objects.create(execution=execution, url=url)


def webhooks_wake(execution_ids: Iterable[str]) -> None:
    """Once the runs' ends commit, have django-q2 send the webhooks of those that asked for
    one (one query; nothing when none did). The every-minute sweep catches any missed."""
    ids = list(execution_ids)
    if ids:
        transaction.on_commit(partial(_wake, ids))


def _wake(ids: list[str]) -> None:
    if WebhookDelivery.objects.filter(execution_id__in=ids, attempts=0).exists():
        from django_q.tasks import async_task

        async_task("executions.tasks.deliver_webhooks", q_options={"timeout": 300})


# --- the secret ---------------------------------------------------------------------------------


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_secret_get(*, tenant: Tenant, actor: str = "system") -> WebhookSecret:
    """The tenant's signing secret, made on first use."""
    found, made = WebhookSecret.objects.get_or_create(
        tenant=tenant, defaults={"secret": _new_secret()}
    )
    if made:
        audit_record(
            tenant=tenant, actor=actor, action="webhook_secret.create", target_type="tenant"
        )
    return found


@transaction.atomic
def webhook_secret_rotate(*, tenant: Tenant, actor: str) -> WebhookSecret:
    """A new secret; webhooks sent from now on are signed with it (the old one stops at once)."""
    found = webhook_secret_get(tenant=tenant, actor=actor)
    found.secret, found.rotated_at = _new_secret(), timezone.now()
    found.save(update_fields=["secret", "rotated_at"])
    audit_record(tenant=tenant, actor=actor, action="webhook_secret.rotate", target_type="tenant")
    return found


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-AgentFlow-Signature` value for `body` sent at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# --- sending ------------------------------------------------------------------------------------


def payload(execution: Execution) -> dict[str, Any]:
    """What the receiver gets: the run's outcome, as `GET /executions/{id}` shows it."""
    state = execution.final_state
    omitted = state is not None and len(json.dumps(state, default=str)) > MAX_STATE_BYTES
    stamp = {
        name: value.isoformat() if (value := getattr(execution, name)) else None
        for name in ("created_at", "started_at", "finished_at")
    }
    return {
        "type": EVENT,
        "execution_id": execution.id,
        "status": execution.status,
        "workflow": execution.workflow_id,
        "workflow_version": execution.workflow_version,
        "workflow_name": execution.workflow_name,
        "final_state": None if omitted else state,
        "final_state_omitted": omitted,
        "error": execution.error,
        "tokens_used": execution.tokens_used,
        "cost": float(execution.cost),
        "execution_time": execution.execution_time,
        **stamp,
        "url": f"/api/v1/executions/{execution.id}",
    }


def _request(delivery: WebhookDelivery, secret: str, now: datetime) -> OutboundRequest:
    body = payload(delivery.execution)
    # The door sends `json.dumps(json_body, ensure_ascii=False)`: the very bytes signed here.
    raw = json.dumps(body, ensure_ascii=False).encode()
    return OutboundRequest(
        "POST",
        delivery.url,
        headers={
            SIGNATURE_HEADER: signature(secret, int(now.timestamp()), raw),
            "X-AgentFlow-Event": EVENT,
            "X-AgentFlow-Delivery": delivery.execution_id,  # the same on every retry: dedupe
            "X-AgentFlow-Attempt": str(delivery.attempts),
            "User-Agent": "AgentFlow-Webhook/1",
        },
        json_body=body,
        timeout=float(settings.AGENTFLOW_WEBHOOK_TIMEOUT),
        follow_redirects=False,
    )


@dataclass(frozen=True)
class Answer:
    status: int | None = None
    error: str = ""
    permanent: bool = False


async def _send_one(request: OutboundRequest, policy: EgressPolicy) -> Answer:
    try:
        answer = await Egress(policy, max_bytes=MAX_ANSWER_BYTES).send(request)
    except EgressRefused as exc:
        return Answer(error=exc.message, permanent=True)
    except TimeoutError:
        return Answer(error=f"No answer within {request.timeout:g} s.")
    except (httpx2.HTTPError, NodeError, OSError) as exc:
        return Answer(error=f"{type(exc).__name__}: {exc}"[:500])
    return Answer(status=answer.status)


async def send_all(requests: list[tuple[OutboundRequest, EgressPolicy]]) -> list[Answer]:
    """Send each request through the egress door, all at once."""
    return list(await asyncio.gather(*(_send_one(r, p) for r, p in requests)))


def webhooks_deliver_due(*, now: datetime | None = None, send: Sender = send_all) -> int:
    """Send every webhook that is due (its run ended, its next attempt come) and record each
    answer; how many were sent. Deliveries are leased while they are sent, so sweeps running at
    the same time (or after a crash mid-send) send each attempt once."""
    now = now or timezone.now()
    taken = _take_due(now)
    if not taken:
        return 0
    requests = [
        (_request(d, webhook_secret_get(tenant=d.execution.tenant).secret, now), _policy(d))
        for d in taken
    ]
    answers = asyncio.run(send(requests))
    for delivery, answer in zip(taken, answers, strict=True):
        _record(delivery, answer, now)
    return len(taken)


def _policy(delivery: WebhookDelivery) -> EgressPolicy:
    return egress_policy(delivery.execution.tenant)


def _take_due(now: datetime) -> list[WebhookDelivery]:
    lease = now + timedelta(seconds=float(settings.AGENTFLOW_WEBHOOK_TIMEOUT) * 3 + 30)
    with transaction.atomic():
        due = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=WebhookDelivery.State.PENDING, execution__status__in=FINISHED)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("next_attempt_at")
        )
        ids = list(due.values_list("pk", flat=True)[:BATCH])
        WebhookDelivery.objects.filter(pk__in=ids).update(
            attempts=F("attempts") + 1, next_attempt_at=lease, last_attempt_at=now
        )
    found = WebhookDelivery.objects.select_related("execution__tenant").in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def retry_delay(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`."""
    base = float(settings.AGENTFLOW_WEBHOOK_RETRY_SECONDS)
    return float(min(base * 2 ** (attempt - 1), MAX_DELAY_SECONDS))


def _record(delivery: WebhookDelivery, answer: Answer, now: datetime) -> None:
    ok = answer.status is not None and 200 <= answer.status < 300
    fields: dict[str, Any] = {"last_status": answer.status, "last_error": answer.error[:500]}
    if ok:
        fields |= {"state": WebhookDelivery.State.DELIVERED, "delivered_at": timezone.now()}
        fields |= {"next_attempt_at": None}
    elif answer.permanent or delivery.attempts >= settings.AGENTFLOW_WEBHOOK_MAX_ATTEMPTS:
        fields |= {"state": WebhookDelivery.State.FAILED, "next_attempt_at": None}
    else:
        fields["next_attempt_at"] = now + timedelta(seconds=retry_delay(delivery.attempts))
    if not ok and not answer.error:
        fields["last_error"] = f"The receiver answered {answer.status}."
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    logger.info(
        "webhook_sent",
        execution_id=delivery.execution_id,
        attempt=delivery.attempts,
        status=answer.status,
        state=fields.get("state", WebhookDelivery.State.PENDING),
    )
