"""Writes on executions: create one, run it, record its trace."""

import asyncio
import json
import secrets
from decimal import Decimal
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from agentflow_site.runtime_config import run_context
from executions.models import Execution, NodeRun, Status
from executions.runner import Event, TokenEvent, run_in_thread
from runtime.compiler import compile_workflow
from runtime.events import NodeFinished, NodeStarted
from runtime.validation import ValidationResult
from tenants.models import Tenant
from tenants.services import audit_record
from workflows.models import Workflow

IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def _money(value: float) -> Decimal:
    return Decimal(str(round(value, 8)))


@transaction.atomic
def execution_create(
    *,
    tenant: Tenant,
    validated: ValidationResult,
    initial_state: dict[str, Any],
    mode: str = "sync",
    timeout_seconds: float | None = None,
    created_by: str = "",
    workflow: Workflow | None = None,
    workflow_version: int | None = None,
) -> Execution:
    assert validated.spec is not None
    spec = validated.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    execution = Execution.objects.create(
        tenant=tenant,
        workflow=workflow,
        workflow_version=workflow_version,
        mode=mode,
        spec=spec,
        spec_digest="",
        workflow_name=validated.spec.name,
        initial_state=initial_state,
        timeout_seconds=timeout_seconds,
        created_by=created_by,
    )
    audit_record(
        tenant=tenant,
        actor=created_by,
        action="execution.create",
        target_type="execution",
        target_id=execution.id,
        details={
            "workflow": workflow.id if workflow else None,
            "version": workflow_version,
            "mode": mode,
        },
    )
    return execution


def _image_store(execution: Execution) -> Any:
    async def store(data: bytes, mime_type: str) -> str:
        name = f"{secrets.token_hex(8)}.{IMAGE_EXTENSIONS.get(mime_type, 'bin')}"
        path = f"executions/{execution.tenant_id}/{execution.id}/{name}"
        await asyncio.to_thread(default_storage.save, path, ContentFile(data))
        return f"/api/v1/executions/{execution.id}/files/{name}"

    return store


def execution_run(*, execution_id: str, validated: ValidationResult) -> Execution:
    """Run a queued execution to the end, recording each node attempt as it happens.

    A second call for the same execution does nothing: the run is claimed with a conditional
    update, so only one caller (web process or worker) ever runs it.
    """
    claimed = Execution.objects.filter(pk=execution_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=timezone.now()
    )
    execution = Execution.objects.get(pk=execution_id)
    if not claimed:
        return execution
    workflow = compile_workflow(validated, state_keys=execution.initial_state.keys())
    Execution.objects.filter(pk=execution.pk).update(spec_digest=workflow.digest)
    try:
        outcome = run_in_thread(
            workflow,
            execution.initial_state,
            run_context(store_image=_image_store(execution)),
            timeout_seconds=execution.timeout_seconds,
            on_event=lambda event: _record(execution, event),
        )
    except Exception as exc:
        _finish(execution, Status.FAILED, None, {"code": "internal_error", "message": str(exc)}, 0)
        raise
    _finish(execution, outcome.status, outcome.final_state, outcome.error, outcome.execution_time)
    execution.refresh_from_db()
    return execution


def _finish(
    execution: Execution,
    status: str,
    final_state: dict[str, Any] | None,
    error: dict[str, Any] | None,
    execution_time: float,
) -> None:
    state = final_state or {}
    Execution.objects.filter(pk=execution.pk).update(
        status=status,
        final_state=final_state,
        error=error,
        tokens_used=int(state.get("tokens_used") or 0),
        cost=_money(float(state.get("cost") or 0)),
        finished_at=timezone.now(),
        execution_time=execution_time,
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _record(execution: Execution, event: Event) -> None:
    if isinstance(event, NodeStarted):
        NodeRun.objects.create(
            execution=execution,
            node_id=event.node_id,
            node_type=event.node_type,
            attempt=event.attempt,
            started_at=event.started_at,
        )
    elif isinstance(event, NodeFinished):
        NodeRun.objects.filter(
            execution=execution,
            node_id=event.node_id,
            attempt=event.attempt,
            status=Status.RUNNING,
        ).update(
            status=event.status,
            duration=event.duration,
            output=_jsonable(event.output),
            tokens=event.tokens,
            cost=_money(event.cost),
            error=event.error,
            details=_jsonable(event.details),
        )
    elif isinstance(event, TokenEvent):
        pass  # streamed deltas reach clients through the events endpoint (background runs)
