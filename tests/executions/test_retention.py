"""Retention: a prune deletes exactly the old ended runs (and every child of theirs) and the old
audit events, per tenant, and leaves the rest (PostgreSQL: checkpoints, SKIP LOCKED, the audit
trigger)."""

import threading
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from executions.models import (
    Execution,
    ExecutionEvent,
    ExecutionProfile,
    NodeRun,
    ProviderRecording,
    Status,
    WebhookDelivery,
)
from executions.periodic import PERIODIC
from executions.retention import prune
from tenants.admin import TenantForm
from tenants.models import AuditEvent, Tenant
from tenants.services import audit_record

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="retention is shown on PostgreSQL (checkpoints)"
)
NOW = timezone.now()
OLD = NOW - timedelta(days=40)
CHILD_MODELS = (NodeRun, ExecutionEvent, ExecutionProfile, WebhookDelivery, ProviderRecording)


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path: Path) -> None:
    settings.AGENTFLOW_RETENTION_DAYS = 30
    settings.AGENTFLOW_AUDIT_RETENTION_DAYS = 365
    settings.MEDIA_ROOT = str(tmp_path)


def run(tenant: Tenant, *, ended=OLD, status=Status.SUCCEEDED) -> Execution:
    """A run with one of each child: trace row, event, profile, webhook, file, checkpoint."""
    execution = Execution.objects.create(
        tenant=tenant, spec={}, spec_digest="", workflow_name="x", status=status, finished_at=ended
    )
    NodeRun.objects.create(execution=execution, node_id="a", node_type="llm", started_at=NOW)
    ExecutionEvent.objects.create(execution=execution, kind="end")
    ExecutionProfile.objects.create(execution=execution, html="<p>")
    WebhookDelivery.objects.create(execution=execution, url="https://example.com/hook")
    ProviderRecording.objects.create(execution=execution, node_id="a", digest="d" * 64)
    default_storage.save(execution.file_path("a.png"), ContentFile(b"png"))
    with connection.cursor() as cursor:
        thread = [execution.id, ""]
        cursor.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint) "
            "VALUES (%s, %s, 'c1', '{}'), (%s, %s, 'c2', '{}')",
            thread * 2,
        )
        cursor.execute(
            "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type) "
            "VALUES (%s, %s, 'x', '1', 'json')",
            thread,
        )
        cursor.execute(
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
            "idx, channel, blob) VALUES (%s, %s, 'c2', 't', 0, 'x', '')",
            thread,
        )
    return execution


def children(execution_id: str) -> dict[str, int]:
    counts = {m.__name__: m.objects.filter(execution_id=execution_id).count() for m in CHILD_MODELS}
    with connection.cursor() as cursor:
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            cursor.execute(f"SELECT count(*) FROM {table} WHERE thread_id = %s", [execution_id])
            counts[table] = cursor.fetchone()[0]
    return counts


def has_file(execution: Execution) -> bool:
    return bool(default_storage.exists(execution.file_path("a.png")))


def audit_at(tenant: Tenant | None, days_ago: int) -> AuditEvent:
    with time_machine.travel(NOW - timedelta(days=days_ago), tick=False):
        return audit_record(tenant=tenant, actor="test", action="thing.done")


def gone(execution: Execution) -> bool:
    return not Execution.objects.filter(pk=execution.pk).exists()


def test_it_deletes_old_ended_runs_with_every_child_and_leaves_the_rest(
    tenant, other_tenant, django_capture_on_commit_callbacks
) -> None:
    old = [run(tenant, status=s) for s in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)]
    busy = [run(tenant, status=s) for s in (Status.RUNNING, Status.WAITING, Status.QUEUED)]
    recent = run(tenant, ended=NOW - timedelta(days=29))
    other_tenant.retention_days = 90
    other_tenant.save()
    kept_by_other = run(other_tenant)
    with django_capture_on_commit_callbacks(execute=True):
        results = prune()
    assert all(gone(e) for e in old)
    for e in old:
        assert not has_file(e)
        assert set(children(e.id).values()) == {0}
    for e in [*busy, recent, kept_by_other]:
        assert not gone(e) and has_file(e)
        assert set(children(e.id).values()) - {0} and children(e.id)["checkpoints"] == 2
    acme = next(r for r in results if r.tenant == "acme")
    assert acme.counts == {
        "executions": 3,
        "trace_rows": 3,
        "events": 3,
        "profiles": 3,
        "webhooks": 3,
        "recordings": 3,
        "files": 3,
        "checkpoints": 6,
        "audit_events": 0,
    }
    assert next(r for r in results if r.tenant == "globex").counts["executions"] == 0


def test_old_audit_events_go_per_tenant_while_newer_ones_stay(tenant, other_tenant) -> None:
    old, recent = audit_at(tenant, 400), audit_at(tenant, 300)
    other_tenant.audit_retention_days = 500
    other_tenant.save()
    kept_longer, past_longer = audit_at(other_tenant, 400), audit_at(other_tenant, 501)
    tenantless = audit_at(None, 366)
    results = prune()
    remaining = set(AuditEvent.objects.values_list("pk", flat=True))
    assert {old.pk, past_longer.pk, tenantless.pk}.isdisjoint(remaining)
    assert {recent.pk, kept_longer.pk} <= remaining
    assert [r.counts["audit_events"] for r in results] == [1, 1, 1]


def test_audit_events_stay_append_only_outside_the_prune(tenant) -> None:
    event = audit_at(tenant, 400)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_dry_run_deletes_nothing_and_reports_what_a_prune_then_deletes(
    tenant, django_capture_on_commit_callbacks
) -> None:
    runs = [run(tenant) for _ in range(3)]
    audit_at(tenant, 400)
    dry = prune(dry_run=True)
    assert all(not gone(e) and has_file(e) for e in runs)
    assert AuditEvent.objects.filter(tenant=tenant, at__lt=NOW - timedelta(days=365)).exists()
    with django_capture_on_commit_callbacks(execute=True):
        done = prune()
    assert [r.counts for r in dry] == [r.counts for r in done]
    assert done[0].counts["executions"] == 3 and done[0].counts["audit_events"] == 1


def test_small_batches_still_delete_everything(tenant, django_capture_on_commit_callbacks) -> None:
    runs = [run(tenant) for _ in range(7)]
    keep = run(tenant, ended=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = prune(tenants=Tenant.objects.filter(pk=tenant.pk), batch_size=2)
    assert all(gone(e) and not has_file(e) for e in runs) and not gone(keep)
    assert result.counts["executions"] == 7 and result.counts["checkpoints"] == 14


def test_retention_zero_keeps_everything_for_ever(tenant, settings) -> None:
    settings.AGENTFLOW_RETENTION_DAYS = 0
    tenant.audit_retention_days = 0
    tenant.save()
    ancient = run(tenant, ended=NOW - timedelta(days=5000))
    event = audit_at(tenant, 5000)
    (result,) = prune(tenants=Tenant.objects.filter(pk=tenant.pk))
    assert result.cutoff is None and result.audit_cutoff is None
    assert not gone(ancient) and AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_command_says_what_would_go_and_changes_nothing(tenant, capsys) -> None:
    old = run(tenant)
    call_command("prune", "--dry-run", "--tenant", "acme")
    out = capsys.readouterr().out
    assert "acme\n  runs ended before " in out
    assert (
        ": 1 executions, 1 trace rows, 1 events, 1 profiles, 1 webhook deliveries, "
        "1 provider recordings, 1 files, "
        "2 checkpoints would go" in out
    )
    assert "audit events before " in out and "nothing was deleted" in out
    assert not gone(old)
    call_command("prune", "--tenant", "acme")
    assert "went" in capsys.readouterr().out and gone(old)


@pytest.mark.django_db(transaction=True)
def test_a_run_another_transaction_holds_is_skipped_not_waited_for(tenant) -> None:
    held, free = run(tenant), run(tenant)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            Execution.objects.select_for_update().get(pk=held.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(10)
    try:
        (first,) = prune(tenants=Tenant.objects.filter(pk=tenant.pk))
    finally:
        release.set()
        holder.join()
    assert first.counts["executions"] == 1 and gone(free) and not gone(held)
    (second,) = prune(tenants=Tenant.objects.filter(pk=tenant.pk))
    assert second.counts["executions"] == 1 and gone(held)


def test_the_daily_schedule_calls_the_prune(tenant, django_capture_on_commit_callbacks) -> None:
    old = run(tenant)
    func = PERIODIC["agentflow-prune"]["func"]
    assert func == "executions.tasks.prune" and PERIODIC["agentflow-prune"]["cron"]
    with django_capture_on_commit_callbacks(execute=True):
        totals = import_string(func)()
    assert gone(old) and not has_file(old)
    assert totals["executions"] == 1 and totals["checkpoints"] == 2


def test_the_tenant_admin_takes_a_retention_of_zero_or_more_days(tenant) -> None:
    fields = {"slug": "acme", "name": "Acme", "allowed_env": "[]", "trusted_hosts": "[]"}
    assert TenantForm({**fields, "retention_days": "0"}, instance=tenant).is_valid()
    bad = TenantForm({**fields, "audit_retention_days": "-1"}, instance=tenant)
    assert not bad.is_valid() and "audit_retention_days" in bad.errors
