"""Helpers for the sandbox's tests: caps restored after each test, and a way to run an evaluation
under a deadline while measuring how long it took and how much memory it took at its peak."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from runtime.sandbox.limits import SandboxLimits, configure, evaluation_deadline

DEADLINE = 2.0
"""Seconds each bomb is given; it must end by then plus SLACK, whatever the machine's load."""
SLACK = 3.0
"""On an idle machine the bombs end within their deadline + 0.1 s; tracemalloc (which these
tests run under) and a busy CI machine slow one check interval several times over. A bomb that
is not stopped runs for tens of seconds (17-100 s before the sandbox)."""
MAX_GROWTH = 50 * 1024 * 1024


@pytest.fixture(autouse=True)
def default_limits() -> Iterator[None]:
    configure(SandboxLimits())
    yield
    configure(SandboxLimits())


@dataclass
class Outcome:
    error: Exception | None
    elapsed: float
    peak: int
    """Bytes Python allocated at the peak of the evaluation, over what it held before."""


def run_bounded(evaluate: Callable[[], object], *, deadline: float = DEADLINE) -> Outcome:
    """Run `evaluate` under a deadline `deadline` seconds away, tracing its allocations."""
    tracemalloc.start()
    start = time.monotonic()
    error = None
    try:
        with evaluation_deadline(start + deadline):
            evaluate()
    except Exception as exc:  # the test looks at which
        error = exc
    elapsed = time.monotonic() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Outcome(error, elapsed, peak)
