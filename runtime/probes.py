"""`POST /sources/{id}/test`: does a source answer, and is it set up safely?

One probe per source kind, listed in `PROBES`. A probe returns checks (each passed or failed,
with what was found) and warnings; it never raises for a source that does not answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from runtime.context import PROVIDER_KINDS, RunContext
from runtime.egress.transport import sdk_client, sync_refusing_client
from runtime.errors import NodeError
from runtime.providers.base import require_env
from runtime.providers.preload import preload
from runtime.source_configs import SOURCE_CONFIGS
from runtime.spec import SourceSpec

PROBE_TIMEOUT = 15.0
OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"


@dataclass
class ProbeReport:
    checks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check["ok"] for check in self.checks)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"name": name, "ok": ok, "detail": detail})

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": self.checks, "warnings": self.warnings}


Probe = Callable[[Any, SourceSpec, RunContext, ProbeReport], Awaitable[None]]


def _sdk_http(ctx: RunContext, source: SourceSpec, config: Any) -> httpx2.AsyncClient:
    """The SDK's client through the egress door (runtime.egress.transport), as a run's has."""
    policy = ctx.egress_policy(source.kind, config)
    return sdk_client(policy, provider=source.kind, timeout=PROBE_TIMEOUT)


async def _model_listed(report: ProbeReport, model: str | None, listed: list[str]) -> None:
    report.check("connect", True, f"The server answered and lists {len(listed)} model(s).")
    if model and listed and not any(name.removeprefix("models/") == model for name in listed):
        report.warnings.append(f"The model {model!r} is not among the models this server lists.")


async def _openai(config: Any, source: SourceSpec, ctx: RunContext, report: ProbeReport) -> None:
    from openai import AsyncOpenAI

    key = require_env(ctx.credentials(source), config.api_key_env, source_kind=source.kind)
    client = AsyncOpenAI(
        api_key=key,
        base_url=config.base_url or OPENAI_URL,
        max_retries=0,
        timeout=PROBE_TIMEOUT,
        http_client=_sdk_http(ctx, source, config),
    )
    async with client:
        listed = [m.id async for m in client.models.list()]
    await _model_listed(report, getattr(config, "model_name", None), listed)


async def _azure(config: Any, source: SourceSpec, ctx: RunContext, report: ProbeReport) -> None:
    from openai import AsyncAzureOpenAI

    key = require_env(ctx.credentials(source), config.api_key_env, source_kind=source.kind)
    client = AsyncAzureOpenAI(
        api_key=key,
        azure_endpoint=config.endpoint,
        api_version=config.api_version,
        max_retries=0,
        timeout=PROBE_TIMEOUT,
        http_client=_sdk_http(ctx, source, config),
    )
    async with client:
        listed = [m.id async for m in client.models.list()]
    report.check("connect", True, f"The endpoint answered and lists {len(listed)} model(s).")


async def _anthropic(config: Any, source: SourceSpec, ctx: RunContext, report: ProbeReport) -> None:
    from anthropic import AsyncAnthropic

    key = require_env(ctx.credentials(source), config.api_key_env, source_kind=source.kind)
    client = AsyncAnthropic(
        api_key=key,
        base_url=config.base_url or ANTHROPIC_URL,
        max_retries=0,
        timeout=PROBE_TIMEOUT,
        http_client=_sdk_http(ctx, source, config),
    )
    async with client:
        listed = [m.id async for m in client.models.list()]
    await _model_listed(report, config.model_name, listed)


async def _google(config: Any, source: SourceSpec, ctx: RunContext, report: ProbeReport) -> None:
    from google import genai
    from google.genai import types

    key = require_env(ctx.credentials(source), config.api_key_env, source_kind=source.kind)
    http = _sdk_http(ctx, source, config)
    options = types.HttpOptions(
        base_url=config.base_url,
        timeout=int(PROBE_TIMEOUT * 1000),
        httpx_async_client=http,
        httpx_client=sync_refusing_client(source.kind),
    )
    client = genai.Client(api_key=key, vertexai=False, http_options=options)
    async with http:
        listed = [m.name or "" async for m in await client.aio.models.list()]
    await _model_listed(report, config.model_name, listed)


async def _database(config: Any, source: SourceSpec, ctx: RunContext, report: ProbeReport) -> None:
    from runtime.databases.base import Query
    from runtime.databases.probe import probe

    adapter = ctx.adapter(source)
    if not hasattr(adapter, "run_admin"):  # sqlite: a read-only file, no role to check
        rows = await adapter.select(Query(sql="SELECT 1 AS ok", params={}, max_rows=1))
        report.check("select", rows.rows == [{"ok": 1}], "SELECT 1 answered.")
        return
    found = await probe(adapter)
    report.check("select", found.ok, found.message)
    if found.ok:
        report.check("role", found.role_ok, found.role_detail)
    report.warnings.extend(found.warnings)


async def _http(config: Any, source: SourceSpec, ctx: RunContext, report: ProbeReport) -> None:
    answer = await ctx.adapter(source).request("GET", "", retries=0)
    reached = answer.status < 500
    report.check("connect", reached, f"GET {config.base_url} answered {answer.status}.")
    if answer.status in (401, 403):
        report.warnings.append(f"The server refused the credentials ({answer.status}).")


PROBES: dict[str, Probe] = {
    "openai": _openai,
    "openai_image": _openai,
    "azure_openai": _azure,
    "anthropic": _anthropic,
    "google": _google,
    "postgres": _database,
    "mysql": _database,
    "sqlite": _database,
    "http": _http,
}


async def probe_source(source: SourceSpec, ctx: RunContext) -> ProbeReport:
    """Test one source; failures become failed checks, never exceptions."""
    report = ProbeReport()
    probe = PROBES.get(source.kind)
    if probe is None:
        report.check("supported", False, f"Sources of kind {source.kind!r} cannot be tested yet.")
        return report
    try:
        config = ctx.source_config(source) if source.kind in PROVIDER_KINDS else None
        config = config or SOURCE_CONFIGS[source.kind].model_validate(source.config)
        await asyncio.to_thread(preload, [source.kind])
        async with asyncio.timeout(PROBE_TIMEOUT + 5):
            await probe(config, source, ctx, report)
    except NodeError as exc:
        report.check("connect", False, ctx.redactor.text(exc.message))
    except TimeoutError:
        report.check("connect", False, f"No answer within {PROBE_TIMEOUT + 5:g} s.")
    except Exception as exc:  # an SDK error: report what the server said, never the key
        report.check("connect", False, _describe(exc, ctx, source))
    finally:
        await ctx.aclose()
    return report


def _describe(exc: Exception, ctx: RunContext, source: SourceSpec) -> str:
    return ctx.redactor.text(f"{type(exc).__name__}: {exc}")[:500]
