"""The node contract: a small class with a `kind`, its metadata model, and an async `run` that
reads the state and returns what the node produced — never mutating the state it was given."""

from __future__ import annotations

import asyncio
import contextvars
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from runtime.context import RunContext
from runtime.errors import NodeError
from runtime.node_metadata import NodeMetadata
from runtime.sandbox.templates import render_template, template_is_light
from runtime.spec import SourceSpec

State = Mapping[str, Any]

EVALUATION_THREADS = 4
"""Threads that evaluate tenants' templates and rules with loops or calls in them, off the
runtime loop, so that one run's heavy template never stalls the other runs of the process."""
_RULE_LOOPS = re.compile(r"\b(all|exists|exists_one|map|filter)\s*\(")
_executor: tuple[int, ThreadPoolExecutor] | None = None
_executor_lock = threading.Lock()


def _evaluations() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None or _executor[0] != os.getpid():  # a forked child makes its own
            pool = ThreadPoolExecutor(EVALUATION_THREADS, thread_name_prefix="agentflow-eval")
            _executor = (os.getpid(), pool)
        return _executor[1]


async def off_loop[T](work: Callable[[], T]) -> T:
    """Run `work` on the evaluation threads, in this task's context (the sandbox's deadline)."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_evaluations(), context.run, work)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


@dataclass(frozen=True)
class NodeOutput:
    result: Any
    """The node's main result: written to its result key (or `output_key`) and to `outputs`."""
    tokens: int = 0
    cost: float = 0.0
    updates: Mapping[str, Any] = field(default_factory=dict)
    """Other state keys the node sets (a router's `intent`)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Facts for the trace only (the model that answered)."""


class Node:
    kind: ClassVar[str]
    result_key: ClassVar[str | None] = None
    """The well-known state key the result goes to; None: only `outputs` (and `output_key`)."""

    def __init__(self, node_id: str, meta: NodeMetadata, sources: Mapping[str, SourceSpec]) -> None:
        self.node_id = node_id
        self.meta = meta
        self.sources = sources

    async def run(self, state: State, ctx: RunContext) -> NodeOutput:
        raise NotImplementedError

    def render(self, template: str, state: State) -> str:
        return render_template(template, state, node_id=self.node_id)

    @cached_property
    def heavy(self) -> bool:
        """Some template of this node loops, calls or builds values, or some rule iterates:
        evaluating it can take up to its deadline."""
        texts = list(_strings(self.meta.model_dump()))
        return any(not template_is_light(t) or _RULE_LOOPS.search(t) for t in texts)

    async def evaluate[T](self, work: Callable[[], T]) -> T:
        """Run `work` (which renders this node's templates or evaluates its rules): here when
        the node is light, else off the loop, which goes on serving other runs meanwhile."""
        return await off_loop(work) if self.heavy else work()

    def source(self) -> SourceSpec:
        ref = self.meta.source_ref()
        if ref is None or ref not in self.sources:
            raise NodeError(f"Node '{self.node_id}' names no usable source.", node_id=self.node_id)
        return self.sources[ref]

    def adapter(self, ctx: RunContext) -> Any:
        return ctx.adapter(self.source())
