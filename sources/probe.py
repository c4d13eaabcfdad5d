"""Run a source's probe from a sync view: on its own thread and event loop."""

import asyncio
import threading
from typing import Any

from agentflow_site.runtime_config import run_context
from runtime.probes import probe_source
from runtime.spec import SourceSpec
from sources.models import Source
from tenants.selectors import tenant_grants


def source_test(source: Source) -> dict[str, Any]:
    spec = SourceSpec.model_validate(
        {"id": source.name, "kind": source.kind, "config": source.config}
    )
    ctx = run_context(
        tenant=f"t{source.tenant_id}",  # as its runs are: its sqlite directory, its buckets
        grants=tenant_grants(source.tenant),
        trusted_hosts=source.tenant.trusted_hosts,
    )
    result: dict[str, Any] = {}

    def target() -> None:
        result["report"] = asyncio.run(probe_source(spec, ctx)).as_dict()

    thread = threading.Thread(target=target, name="agentflow-probe", daemon=True)
    thread.start()
    thread.join()
    return result.get("report") or {"ok": False, "checks": [], "warnings": ["The test crashed."]}
