"""Profiles on demand, with pyinstrument: of one run, or of one request.

A run is profiled on the runtime loop, where it runs, in pyinstrument's async mode: only the run's
own task (and the tasks it starts: parallel branches) is sampled, not the other runs the loop
drives at the same time, and the time it spends waiting (a provider, a database, a rate limit)
shows as `<await>` under the call that waited. Which runs: `AGENTFLOW_PROFILE_EXECUTIONS`
(workflow names or ids, `*` for every run) or `manage.py profile_run`. A request is profiled in
its own thread by `manage.py profile_request`.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pyinstrument import Profiler

INTERVAL = 0.001
"""Seconds between samples."""


@dataclass(frozen=True)
class Profile:
    html: str
    duration: float
    """Seconds profiled (wall clock)."""


def profile_wanted(*, workflow_name: str, workflow_id: str | None, asked: bool = False) -> bool:
    """Whether a run of this workflow is profiled (the operator's setting, or `asked`)."""
    from django.conf import settings

    chosen = settings.AGENTFLOW_PROFILE_EXECUTIONS
    return asked or (bool(chosen) and bool({"*", workflow_name, workflow_id} & chosen))


async def profiled[T](work: Awaitable[T], what: str) -> tuple[T, Profile]:
    """Await `work` under pyinstrument, sampling this task and those it starts only; the HTML is
    rendered off the loop."""
    profiler = Profiler(interval=INTERVAL, async_mode="enabled")
    start = time.monotonic()
    profiler.start(target_description=what)
    try:
        result = await work
    finally:
        profiler.stop()
    html = await asyncio.to_thread(profiler.output_html)
    return result, Profile(html, round(time.monotonic() - start, 6))


def profiled_call[T](call: Callable[[], T], what: str) -> tuple[T, Profile]:
    """Call `call` under pyinstrument, sampling this thread."""
    profiler = Profiler(interval=INTERVAL, async_mode="disabled")
    start = time.monotonic()
    profiler.start(target_description=what)
    try:
        result = call()
    finally:
        profiler.stop()
    return result, Profile(profiler.output_html(), round(time.monotonic() - start, 6))
