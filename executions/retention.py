"""Retention: ended runs and audit events older than their tenant's cutoff go, in batches.

A run goes when it ended (`finished_at`) before the cutoff and is finished (never a queued,
running or waiting one), with its trace (NodeRun), events, profiles, webhook delivery, provider
recordings (what a replay answers from), stored files and LangGraph checkpoints (thread id =
execution id). Workflows, versions, sources, keys and schedule ticks (which name a run by id, no
foreign key) stay.

Each batch is one short transaction: its runs are picked by primary key with
`FOR UPDATE SKIP LOCKED` (PostgreSQL; a row another transaction holds is left for the next
prune), children are deleted before their run, and the files go once the rows are gone. Audit
events are append-only in the database (tenants/migrations/0004): only a transaction that sets
`agentflow.audit_prune` may delete them (tenants/migrations/0007), and only this module does.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from executions.checkpoints import sqlite_path
from executions.models import (
    FINISHED,
    Execution,
    ExecutionEvent,
    ExecutionProfile,
    NodeRun,
    ProviderRecording,
    WebhookDelivery,
)
from tenants.models import AuditEvent, Tenant

BATCH = 500
"""Rows one transaction deletes."""
Child = NodeRun | ExecutionEvent | ExecutionProfile | WebhookDelivery | ProviderRecording
CHILDREN: dict[str, type[Child]] = {
    "trace_rows": NodeRun,
    "events": ExecutionEvent,
    "profiles": ExecutionProfile,
    "webhooks": WebhookDelivery,
    "recordings": ProviderRecording,
}
PG_CHECKPOINT_TABLES = ("checkpoint_writes", "checkpoint_blobs", "checkpoints")
SQLITE_CHECKPOINT_TABLES = ("writes", "checkpoints")


@dataclass
class Pruned:
    """What went (or, in a dry run, would go) of one tenant (None: audit events of no tenant)."""

    tenant: str | None
    cutoff: datetime | None  # None: kept for ever
    audit_cutoff: datetime | None
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("executions", *CHILDREN, "files", "checkpoints", "audit_events"), 0
        )
    )


def retention_days(tenant: Tenant) -> int:
    days = tenant.retention_days
    return settings.AGENTFLOW_RETENTION_DAYS if days is None else days


def audit_retention_days(tenant: Tenant | None) -> int:
    days = tenant.audit_retention_days if tenant else None
    return settings.AGENTFLOW_AUDIT_RETENTION_DAYS if days is None else days


def _cutoff(days: int, now: datetime) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def prune(
    *,
    tenants: QuerySet[Tenant] | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH,
    now: datetime | None = None,
) -> list[Pruned]:
    """Delete (or count, with `dry_run`) what each tenant keeps no longer; audit events of no
    tenant too when every tenant is pruned."""
    now = now or timezone.now()
    results = []
    for tenant in tenants if tenants is not None else Tenant.objects.order_by("slug"):
        result = Pruned(
            tenant.slug,
            _cutoff(retention_days(tenant), now),
            _cutoff(audit_retention_days(tenant), now),
        )
        if result.cutoff:
            _prune_executions(tenant, result, dry_run, batch_size)
        if result.audit_cutoff:
            audit = AuditEvent.objects.filter(tenant=tenant, at__lt=result.audit_cutoff)
            result.counts["audit_events"] = _prune_audit(audit, dry_run, batch_size)
        results.append(result)
    if tenants is None:
        results.append(_prune_tenantless_audit(now, dry_run, batch_size))
    return results


def _prune_tenantless_audit(now: datetime, dry_run: bool, batch_size: int) -> Pruned:
    result = Pruned(None, None, _cutoff(audit_retention_days(None), now))
    if result.audit_cutoff:
        audit = AuditEvent.objects.filter(tenant=None, at__lt=result.audit_cutoff)
        result.counts["audit_events"] = _prune_audit(audit, dry_run, batch_size)
    return result


def prunable(tenant: Tenant, cutoff: datetime) -> QuerySet[Execution]:
    """The tenant's runs that ended before the cutoff (never one queued, running or waiting)."""
    return Execution.objects.for_tenant(tenant).filter(finished_at__lt=cutoff, status__in=FINISHED)


def _batches(
    rows: QuerySet[Execution] | QuerySet[AuditEvent], size: int, lock: bool
) -> Iterator[list[Any]]:
    """Primary keys, `size` at a time in key order, each batch inside its own transaction
    (locked, skipping rows another transaction holds, when `lock`)."""
    after: object = None
    while True:
        with transaction.atomic():
            page = rows.order_by("pk") if after is None else rows.filter(pk__gt=after)
            if lock:
                page = page.select_for_update(skip_locked=True)
            ids = list(page.order_by("pk").values_list("pk", flat=True)[:size])
            if not ids:
                return
            yield ids
        after = ids[-1]


def _prune_executions(tenant: Tenant, result: Pruned, dry_run: bool, size: int) -> None:
    assert result.cutoff is not None
    for ids in _batches(prunable(tenant, result.cutoff), size, lock=not dry_run):
        runs = [str(pk) for pk in ids]
        files = _files(tenant, runs)
        counts = result.counts
        counts["checkpoints"] += _checkpoints(runs, delete=not dry_run)
        for name, model in CHILDREN.items():
            children = model.objects.filter(execution_id__in=runs)
            counts[name] += children.count() if dry_run else children.delete()[0]
        gone = Execution.objects.filter(pk__in=runs)
        counts["executions"] += len(runs) if dry_run else gone.delete()[1][Execution._meta.label]
        counts["files"] += len(files)
        if not dry_run:  # the files go once their rows are gone for good
            transaction.on_commit(partial(_delete_files, files))


def _prune_audit(rows: QuerySet[AuditEvent], dry_run: bool, size: int) -> int:
    if dry_run:
        return rows.count()
    gone = 0
    for ids in _batches(rows, size, lock=False):  # audit rows are never updated: no lock
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('agentflow.audit_prune', 'on', true)")
        # A QuerySet delete (AuditEvent.delete() refuses); the flag lasts this transaction.
        gone += AuditEvent.objects.filter(pk__in=ids).delete()[0]
    return gone


def _files(tenant: Tenant, runs: list[str]) -> list[str]:
    """The stored files of these runs (Execution.file_path's directories)."""
    found = []
    for run in runs:
        folder = f"executions/{tenant.pk}/{run}"
        try:
            names = default_storage.listdir(folder)[1]
        except (FileNotFoundError, NotImplementedError):
            continue
        found += [f"{folder}/{name}" for name in names]
    return found


def _delete_files(paths: list[str]) -> None:
    for path in paths:
        default_storage.delete(path)


def _checkpoints(runs: list[str], *, delete: bool) -> int:
    """The checkpoints of these runs' threads, deleted unless counting (their pending writes and
    blobs with them); how many checkpoints."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            return _checkpoint_rows(cursor, PG_CHECKPOINT_TABLES, "= ANY(%s)", [runs], delete)
    if not sqlite_path().exists():
        return 0
    with closing(sqlite3.connect(sqlite_path())) as db, db:
        marks = "IN (" + ",".join("?" * len(runs)) + ")"
        return _checkpoint_rows(db.cursor(), SQLITE_CHECKPOINT_TABLES, marks, runs, delete)


def _checkpoint_rows(
    cursor: Any, tables: tuple[str, ...], test: str, params: list[Any], delete: bool
) -> int:
    count = 0
    for table in tables:
        verb = "DELETE" if delete else "SELECT count(*)"
        try:
            cursor.execute(f"{verb} FROM {table} WHERE thread_id {test}", params)
        except sqlite3.OperationalError:  # no such table: nothing was ever checkpointed
            continue
        if table == "checkpoints":
            count = cursor.rowcount if delete else cursor.fetchone()[0]
    return int(count)
