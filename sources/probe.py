"""Run a source's probe from a sync view: on its own thread and event loop."""

import asyncio
import threading
from typing import Any

from agentflow_site.runtime_config import run_context
from runtime.probes import probe_source
from runtime.spec import SourceSpec
from sources.models import Source


def source_test(source: Source) -> dict[str, Any]:
    spec = SourceSpec.model_validate(
        {"id": source.name, "kind": source.kind, "config": source.config}
    )
    ctx = run_context()
    result: dict[str, Any] = {}

    def target() -> None:
        result["report"] = asyncio.run(probe_source(spec, ctx)).as_dict()

    thread = threading.Thread(target=target, name="agentflow-probe", daemon=True)
    thread.start()
    thread.join()
    return result.get("report") or {"ok": False, "checks": [], "warnings": ["The test crashed."]}
