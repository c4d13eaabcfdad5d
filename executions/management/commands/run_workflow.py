import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from agentflow_site.runtime_config import run_context
from executions.models import Execution, ExecutionEvent, Status, Worker
from executions.services import execution_create, heartbeat_stale
from executions.tasks import enqueue_run
from runtime.compiler import compile_workflow
from runtime.events import NodeFinished, NodeStarted
from runtime.runner import run_workflow
from tenants.models import Tenant
from tenants.selectors import tenant_grants
from workflows.services import workflow_validate

NO_WORKER_REMINDER = 10.0
"""Seconds a queued run waits with no worker alive before the CLI says so again."""


class _Lines:
    """stdout for lines and for streamed text: a line after streamed text starts on its own."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.mid_line = False

    def __call__(self, line: str) -> None:
        if self.mid_line:
            self.out.write("")  # ends the streamed text's line
            self.mid_line = False
        self.out.write(line)

    def stream(self, text: str) -> None:
        if text:
            self.out.write(text, ending="")
            self.out.flush()
            self.mid_line = not text.endswith("\n")


class _Printer:
    def __init__(self, write: Any) -> None:
        self.write = write

    async def node_started(self, event: NodeStarted) -> None:
        retry = f" (attempt {event.attempt})" if event.attempt > 1 else ""
        self.write(f"▶ {event.node_id} [{event.node_type}] started{retry}")

    async def node_finished(self, event: NodeFinished) -> None:
        took = f"{event.duration * 1000:.0f} ms"
        if event.error:
            self.write(
                f"✗ {event.node_id} failed after {took}: {event.error['code']}: "
                f"{event.error['message']}"
            )
            return
        usage = f", {event.tokens} tokens, ${event.cost:.6f}" if event.tokens else ""
        self.write(f"✓ {event.node_id} finished in {took}{usage}")

    async def node_token(self, node_id: str, delta: str) -> None:
        return None


class Command(BaseCommand):
    help = (
        "Run a WorkflowSpec file once, here, printing each node as it starts and ends, then the "
        "final state. Nothing is recorded. Exit status 1 when the run does not succeed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path to the spec")
        parser.add_argument("--input", default="", help="the user_input")
        parser.add_argument("--state", default="{}", help="more initial state, as a JSON object")
        parser.add_argument("--timeout", type=float, help="seconds for the whole run")
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="queue it for a worker (recorded as an execution of --tenant) and follow its "
            "events until it ends",
        )
        parser.add_argument(
            "--tenant",
            help="the tenant whose grants and trusted hosts the run has (and, with --enqueue, "
            "that the execution is recorded for)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["verbosity"] < 2:  # the run's own log lines only with -v 2 (or more)
            logging.disable(logging.CRITICAL)
        try:
            self._handle(opts)
        finally:
            logging.disable(logging.NOTSET)

    def _handle(self, opts: dict[str, Any]) -> None:
        self.lines = _Lines(self.stdout)
        try:
            text = Path(opts["file"]).read_bytes()
            state = json.loads(opts["state"])
        except OSError as exc:
            raise CommandError(f"Cannot read {opts['file']}: {exc.strerror}.") from exc
        except ValueError as exc:
            raise CommandError(f"--state is not JSON: {exc}") from exc
        if not isinstance(state, dict):
            raise CommandError("--state must be a JSON object.")
        if opts["input"]:
            state["user_input"] = opts["input"]
        tenant = None
        if opts["tenant"]:
            tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(
                    f"There is no tenant '{opts['tenant']}': see `manage.py createtenant`, or "
                    "the tenants in the admin."
                )
        elif opts["enqueue"]:
            raise CommandError("--enqueue needs --tenant SLUG: the run is recorded for a tenant.")
        validated = workflow_validate(spec=text, tenant=tenant)
        if not validated.valid:
            for e in validated.errors:
                self.stderr.write(
                    f"{opts['file']}:{e.line or 0}:{e.column or 0}: {e.type}: {e.message}"
                )
            raise CommandError("The workflow is not valid.")
        if opts["enqueue"]:
            assert tenant is not None
            self._enqueue(validated, state, opts, tenant)
            return
        workflow = compile_workflow(validated, state_keys=state.keys())
        # No image store: images come back as data: URLs. Without --tenant the operator runs it
        # and the grants are not checked (validation still refuses the platform's own variables).
        ctx = run_context(
            grants=tenant_grants(tenant) if tenant is not None else None,
            trusted_hosts=tenant.trusted_hosts if tenant is not None else (),
        )
        ctx.observer = _Printer(self.lines)
        outcome = asyncio.run(run_workflow(workflow, state, ctx, timeout_seconds=opts["timeout"]))
        self.lines(
            f"status: {outcome.status} in {outcome.execution_time:.3f} s, "
            f"{outcome.tokens_used} tokens, ${outcome.cost:.6f}"
        )
        if outcome.error:
            self.lines(f"error: {json.dumps(outcome.error)}")
        self.lines(json.dumps(outcome.final_state, indent=2, ensure_ascii=False))
        if outcome.status != "succeeded":
            raise SystemExit(1)

    def _enqueue(
        self, validated: Any, state: dict[str, Any], opts: dict[str, Any], tenant: Tenant
    ) -> None:
        with transaction.atomic():
            execution = execution_create(
                tenant=tenant,
                validated=validated,
                initial_state=state,
                mode="async",
                timeout_seconds=opts["timeout"],
                created_by="cli",
            )
            enqueue_run(execution.id)
        self.lines(f"queued {execution.id}; following its events (Ctrl-C stops following)")
        last, told = 0, -NO_WORKER_REMINDER
        started = time.monotonic()
        while True:
            for event in ExecutionEvent.objects.filter(execution=execution, id__gt=last):
                last = event.pk
                if event.kind == "end":
                    self._end(execution.id)
                    return
                self._show(event.kind, event.data)
            waited = time.monotonic() - started
            if waited - told >= NO_WORKER_REMINDER and self._no_worker(execution.id):
                told = waited
                self.lines(
                    "  … no run worker is running: the run waits in the queue until one starts "
                    "(make worker, or manage.py runworker)."
                )
            time.sleep(0.2)

    @staticmethod
    def _no_worker(execution_id: str) -> bool:
        queued = Execution.objects.filter(pk=execution_id, status=Status.QUEUED).exists()
        alive = Worker.objects.filter(beat_at__gte=timezone.now() - heartbeat_stale())
        return queued and not alive.exists()

    def _show(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "node_started":
            self.lines(f"▶ {data['node_id']} [{data['node_type']}] started")
        elif kind == "node_finished":
            took = f"{data['duration'] * 1000:.0f} ms"
            if data.get("error"):
                self.lines(
                    f"✗ {data['node_id']} failed after {took}: "
                    f"{data['error']['code']}: {data['error']['message']}"
                )
            elif data.get("status") == "waiting":
                self.lines(f"⏸ {data['node_id']} waits for an answer")
            else:
                self.lines(f"✓ {data['node_id']} finished in {took}")
        elif kind == "token":
            self.lines.stream(data["delta"])
        elif kind == "run_waiting":
            self.lines(
                f"⏸ {data['node_id']} asks: {data['question']} ({' / '.join(data['options'])}); "
                "answer at POST /api/v1/executions/{id}/resume"
            )
        elif kind == "run_resumed":
            self.lines(f"▶ {data['node_id']} answered {data['answer']!r} by {data['by']}")

    def _end(self, execution_id: str) -> None:
        run = Execution.objects.get(pk=execution_id)
        self.lines(f"status: {run.status}, {run.tokens_used} tokens, ${float(run.cost):.6f}")
        if run.error:
            self.lines(f"error: {json.dumps(run.error)}")
        self.lines(json.dumps(run.final_state, indent=2, ensure_ascii=False))
        if run.status != "succeeded":
            raise SystemExit(1)
