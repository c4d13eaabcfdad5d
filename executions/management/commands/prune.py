from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from executions.retention import BATCH, Pruned, prune
from tenants.models import Tenant

LABELS = {
    "executions": "executions",
    "trace_rows": "trace rows",
    "events": "events",
    "profiles": "profiles",
    "webhooks": "webhook deliveries",
    "recordings": "provider recordings",
    "files": "files",
    "checkpoints": "checkpoints",
}


def describe(result: Pruned, verb: str) -> list[str]:
    """The lines `prune` prints for one tenant (or for the audit events of no tenant)."""
    counts = result.counts
    lines = [result.tenant or "(no tenant)"]
    if result.tenant and result.cutoff:
        runs = ", ".join(f"{counts[key]} {label}" for key, label in LABELS.items())
        lines.append(f"  runs ended before {result.cutoff:%Y-%m-%d %H:%M} UTC: {runs} {verb}")
    elif result.tenant:
        lines.append("  runs: kept for ever")
    if result.audit_cutoff:
        n = counts["audit_events"]
        lines.append(f"  audit events before {result.audit_cutoff:%Y-%m-%d %H:%M} UTC: {n} {verb}")
    else:
        lines.append("  audit events: kept for ever")
    return lines


class Command(BaseCommand):
    help = (
        "Delete ended runs (traces, events, files, checkpoints) and audit events older than each "
        "tenant's retention; --dry-run only says what would go."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument("--tenant", metavar="SLUG", help="this tenant only")
        parser.add_argument("--batch-size", type=int, default=BATCH, help="rows per transaction")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenants = None
        if opts["tenant"]:
            tenants = Tenant.objects.filter(slug=opts["tenant"])
            if not tenants.exists():
                raise CommandError(f"No tenant {opts['tenant']!r}.")
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        dry_run = opts["dry_run"]
        results = prune(tenants=tenants, dry_run=dry_run, batch_size=opts["batch_size"])
        verb = "would go" if dry_run else "went"
        for result in results:
            self.stdout.write("\n".join(describe(result, verb)))
        if dry_run:
            self.stdout.write("(dry run: nothing was deleted)")
