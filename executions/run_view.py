"""What the admin's run view shows of one execution: its graph with each node's state, and the
timeline of its node attempts (NodeRun rows), built from the rows as they are now."""

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from html import unescape
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from executions.approvals import waiting_for
from executions.models import FINISHED, Execution, ExecutionEvent, NodeRun, Status
from executions.trace import loop_passes
from runtime.graph_render import PictureTooLarge, diagram_of, render_svg
from workflows.pictures import picture_limits

NOT_RUN = "not-run"
SKIPPED = "skipped"
INPUT_NOT_RECORDED = (
    "Not recorded: LLM (and LLM router), db, http and image nodes record what they were given "
    "when an attempt ends; other nodes read the state."
)
INPUT_KEYS = ("input", "prompt", "rendered_prompt", "query", "request")
"""Keys of an attempt's details that hold what it was given, when a node records it."""
MAX_ATTEMPTS_SHOWN = 500
"""A long loop's latest attempts only: the page stays readable (the states count them all)."""
MAX_REPLAYS_SHOWN = 5
STREAMED_CHARS = 4000
"""The end of a running node's streamed text shown; the rest is in its output when it ends."""
_NODE_GROUP = re.compile(r'<g class="af-node af-node-node" data-node-id="([^"]*)"')


@dataclass(frozen=True)
class NodeState:
    state: str
    """`not-run`, `skipped`, or the last attempt's status (`running`, `succeeded`, `failed`,
    `cancelled`, `timed_out`): the class `af-state-<state>`."""
    retries: int = 0
    passes: int = 0
    bound: int | None = None
    """The most passes a loop allows the node (its bound plus the first), when one loop holds it."""

    @property
    def label(self) -> str:
        parts = [self.state.replace("-", " ").replace("_", " ")]
        if self.retries:
            parts.append(f"retried {self.retries} time" + ("s" if self.retries > 1 else ""))
        if self.passes > 1 or (self.bound and self.passes):
            parts.append(f"pass {self.passes}" + (f" of ≤{self.bound}" if self.bound else ""))
        return " · ".join(parts)


@dataclass(frozen=True)
class Attempt:
    row: NodeRun
    pass_number: int
    offset_ms: int
    duration_ms: int | None
    rate_wait_ms: int | None
    bar_left: float
    """Where its bar starts and how wide it is, in percent of the run's span."""
    bar_width: float
    output: str | None
    error: str | None
    given: str | None
    """What it was given (the rendered prompt, query or request), when recorded."""
    details: str | None
    streamed: str | None = None
    """What a running LLM node has streamed so far (its token events)."""
    loops: bool = False
    """Its node ran more than one pass (a loop): the pass number tells them apart."""
    replayed: bool = False
    """A replay's attempt answered from the original's record (executions.replay)."""
    kept: bool = False
    """A replay's attempt kept from the original: it ran before the replay's `from_node`."""
    was: str | None = None
    """What the recorded answer cost the original: `was 44 tokens, $0.000012`."""

    @property
    def cost(self) -> str:
        return amount(self.row.cost)

    @property
    def key(self) -> str:
        return f"attempt-{self.row.pk}"


@dataclass(frozen=True)
class RunView:
    execution: Execution
    active: bool
    picture: SafeString
    states: dict[str, NodeState]
    attempts: list[Attempt]
    hidden: int
    """Earlier attempts left out (past MAX_ATTEMPTS_SHOWN)."""
    inputs: str
    output: str | None
    error: str | None
    input_not_recorded: str = INPUT_NOT_RECORDED
    waiting: dict[str, Any] | None = None
    """What a waiting run asks (executions.approvals.waiting_for); None when it waits on nothing."""
    replays: tuple[str, ...] = ()
    """The latest runs that replay this one (their `replay_of`), newest first."""

    @property
    def cost(self) -> str:
        return amount(self.execution.cost)


def run_view_build(execution: Execution) -> RunView:
    """The run view of `execution` as its rows stand now."""
    rows = list(NodeRun.objects.filter(execution=execution).order_by("started_at", "id"))
    active = execution.status not in FINISHED
    spec = execution.spec if isinstance(execution.spec, Mapping) else {}
    states = node_states(spec, rows, succeeded=execution.status == Status.SUCCEEDED)
    attempts = _attempts(execution, rows)
    shown = attempts[-MAX_ATTEMPTS_SHOWN:]
    if active:
        shown = _with_streams(execution, shown)
    return RunView(
        execution=execution,
        active=active,
        picture=_picture(spec, states),
        states=states,
        attempts=shown,
        hidden=len(attempts) - len(shown),
        inputs=pretty(execution.initial_state),
        output=None if execution.final_state is None else pretty(execution.final_state),
        error=None if execution.error is None else pretty(execution.error),
        waiting=waiting_for(execution),
        replays=() if active else _replays(execution),
    )


def _replays(execution: Execution) -> tuple[str, ...]:
    latest = execution.replays.order_by("-created_at").values_list("id", flat=True)
    return tuple(latest[:MAX_REPLAYS_SHOWN])


def amount(value: Decimal | float) -> str:
    """A cost without trailing zeros: 0.00012, not 0.00012000."""
    return f"{Decimal(str(value)).normalize():f}" if value else "0"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def node_states(
    spec: Mapping[str, Any], rows: Sequence[NodeRun], *, succeeded: bool
) -> dict[str, NodeState]:
    """Each node's state from its attempts; a node with none was skipped if the run succeeded
    (a branch not taken), else it was not (yet) run."""
    bounds = loop_bounds(spec)
    by_node: dict[str, list[NodeRun]] = {}
    for row in rows:
        by_node.setdefault(row.node_id, []).append(row)
    idle = SKIPPED if succeeded else NOT_RUN
    states = {
        node_id: NodeState(idle, bound=_single(bounds.get(node_id))) for node_id in _ids(spec)
    }
    for node_id, runs in by_node.items():
        state = runs[-1].status if runs[-1].status in Status.values else Status.FAILED
        retries = sum(1 for r in runs if r.attempt > 1)
        passes = loop_passes(runs)[-1]
        bound = _single(bounds.get(node_id))
        states[node_id] = NodeState(str(state), retries, passes, bound)
    return states


def loop_bounds(spec: Mapping[str, Any]) -> dict[str, list[int]]:
    """The pass bound (max_iterations + 1) of each loop holding a node: a loop edge u→v holds
    the nodes reachable from v that reach u."""
    edges = [e for e in spec.get("edges") or [] if isinstance(e, Mapping)]
    ahead: dict[str, set[str]] = {}
    behind: dict[str, set[str]] = {}
    for edge in edges:
        source, target = str(edge.get("from")), str(edge.get("to"))
        ahead.setdefault(source, set()).add(target)
        behind.setdefault(target, set()).add(source)
    bounds: dict[str, list[int]] = {}
    for edge in edges:
        loop = edge.get("loop")
        if isinstance(loop, Mapping) and isinstance(loop.get("max_iterations"), int):
            source, target = str(edge.get("from")), str(edge.get("to"))
            held = _reach(target, ahead) & _reach(source, behind)
            for node_id in held:
                bounds.setdefault(node_id, []).append(loop["max_iterations"] + 1)
    return bounds


def _reach(start: str, links: Mapping[str, set[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in links.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _single(bounds: list[int] | None) -> int | None:
    return bounds[0] if bounds and len(bounds) == 1 else None


def _ids(spec: Mapping[str, Any]) -> Iterable[str]:
    nodes = spec.get("nodes") or []
    return [str(n["id"]) for n in nodes if isinstance(n, Mapping) and "id" in n]


def _picture(spec: Mapping[str, Any], states: Mapping[str, NodeState]) -> SafeString:
    """The workflow's picture, each node marked with its state (a class, and a line of text)."""
    try:
        diagram = diagram_of(spec, picture_limits())
        boxes = tuple(
            replace(b, badges=(*b.badges, states[b.id].label)) if b.id in states else b
            for b in diagram.boxes
        )
        svg = render_svg(replace(diagram, boxes=boxes), picture_limits())
    except PictureTooLarge as exc:
        return format_html("<p>{}</p>", str(exc))

    def mark(found: re.Match[str]) -> str:
        state = states.get(unescape(found.group(1)))
        extra = f" af-state-{state.state}" if state else ""
        return f'<g class="af-node af-node-node{extra}" data-node-id="{found.group(1)}"'

    # safe: the drawing escapes every string it takes from the spec; a state is one of ours
    return mark_safe(_NODE_GROUP.sub(mark, svg))


def _attempts(execution: Execution, rows: Sequence[NodeRun]) -> list[Attempt]:
    base = execution.started_at or (rows[0].started_at if rows else execution.created_at)
    span = max([_ms(r.started_at, base) + _duration_ms(r) for r in rows] or [1]) or 1
    numbers = loop_passes(rows)
    passes = dict(zip((row.node_id for row in rows), numbers, strict=True))  # each node's last
    return [
        replace(
            _attempt(row, number, _ms(row.started_at, base), _duration_ms(row), span),
            loops=passes[row.node_id] > 1,
        )
        for row, number in zip(rows, numbers, strict=True)
    ]


def _attempt(row: NodeRun, number: int, offset: int, duration: int, span: int) -> Attempt:
    details = row.details if isinstance(row.details, Mapping) else {}
    wait = details.get("rate_wait_seconds")
    given = {k: details[k] for k in INPUT_KEYS if k in details}
    rest = {k: v for k, v in details.items() if k not in INPUT_KEYS}
    return Attempt(
        row=row,
        pass_number=number,
        offset_ms=offset,
        duration_ms=None if row.duration is None else duration,
        rate_wait_ms=round(wait * 1000) if isinstance(wait, int | float) else None,
        bar_left=round(100 * offset / span, 2),
        bar_width=max(round(100 * duration / span, 2), 0.5),
        output=None if row.output is None else pretty(row.output),
        error=None if row.error is None else pretty(row.error),
        given=_given(given) if given else None,
        details=pretty(rest) if rest else None,
        replayed=details.get("replayed") is True,
        kept=details.get("kept") is True,
        was=_was(details),
    )


def _was(details: Mapping[str, Any]) -> str | None:
    tokens, cost = details.get("recorded_tokens"), details.get("recorded_cost")
    if not isinstance(tokens, int) or not isinstance(cost, int | float):
        return None
    return f"was {tokens} token{'' if tokens == 1 else 's'}, ${amount(cost)}"


def _given(given: Mapping[str, Any]) -> str:
    """What an attempt was given, readable: a prompt's messages as text, one after another."""
    recorded = given["input"] if set(given) == {"input"} else given
    messages = recorded.get("messages") if isinstance(recorded, Mapping) else None
    if not isinstance(messages, list):
        return pretty(recorded)
    return "\n\n".join(
        f"[{m.get('role')}]\n{m.get('content')}" if isinstance(m, Mapping) else pretty(m)
        for m in messages
    )


def _with_streams(execution: Execution, attempts: list[Attempt]) -> list[Attempt]:
    """Running attempts with the text their node has streamed since it started."""
    running = {a.row.node_id: a for a in attempts if a.row.status == Status.RUNNING}
    if not running:
        return attempts
    since = min(a.row.started_at for a in running.values())
    tokens = ExecutionEvent.objects.filter(
        execution=execution, kind="token", at__gte=since, data__node_id__in=list(running)
    ).order_by("id")
    text: dict[str, str] = {}
    for event in tokens:
        node_id = event.data.get("node_id")
        if event.at >= running[node_id].row.started_at:
            text[node_id] = text.get(node_id, "") + str(event.data.get("delta", ""))
    return [
        replace(a, streamed=text[a.row.node_id][-STREAMED_CHARS:])
        if a.row.status == Status.RUNNING and a.row.node_id in text
        else a
        for a in attempts
    ]


def _ms(at: datetime, base: datetime) -> int:
    return max(round((at - base).total_seconds() * 1000), 0)


def _duration_ms(row: NodeRun) -> int:
    """Its duration; so far, for an attempt still running (its bar grows while it runs)."""
    if row.duration is None and row.status == Status.RUNNING:
        return _ms(timezone.now(), row.started_at)
    return round((row.duration or 0) * 1000)
