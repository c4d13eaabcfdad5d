"""What a node's prompt may read before the run: the initial state, and stand-ins for what the
nodes before it write.

Keys an earlier node writes (`text_result`, `intent`, `db_result`…) are not known before the run.
The `floor` state leaves them out (the initial state's own value stays where it has one), as on
a first pass that reads only the initial state. The `ceiling` state stands in for what an earlier
chat node writes (`text_result`, its `output_key`, `outputs.<id>`) with text as long as that
node's completion bound, and for `intent` with the longest intent an earlier router can produce.
What other nodes write (rows, HTTP bodies) has no bound and stays out of both.

A stand-in is a short marker naming its length in tokens (`stand_in`), never the text itself: a
spec's `max_tokens` is the tenant's to choose, and 300 nodes reading `outputs` with 40,000-token
stand-ins written out took 1.5 GB and 4 s to estimate. `unfold` takes the markers out of a
rendered prompt and adds what they stand for, as if that many tokens stood there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.sandbox.limits import current_limits

STAND_IN_CHARS = 4
"""Characters one token of a stand-in counts for (one approximate token)."""
_MARKER = re.compile(r"⟦stand-in:(\d+)⟧")


def stand_in(tokens: int) -> str:
    """What stands in the ceiling state for an answer `tokens` long."""
    return f"⟦stand-in:{tokens}⟧"


def unfold(text: str) -> tuple[str, int]:
    """`text` without its stand-ins, and the tokens they stand for: at most what one rendered
    template may hold (a longer prompt fails its node with template_limit, so none is sent)."""
    total = 0

    def drop(found: re.Match[str]) -> str:
        nonlocal total
        total += int(found.group(1))
        return ""

    bare = _MARKER.sub(drop, text)
    return bare, min(total, current_limits().template_max_output_chars // STAND_IN_CHARS)


@dataclass
class Prior:
    """What the nodes that may run before one node (on any pass, loops included) write."""

    nodes: int = 0
    """Those nodes, as a bitset over the spec's node order."""
    keys: dict[str, int] = field(default_factory=dict)
    """Each key they write → the longest chat answer written to it, in tokens (0: no chat)."""
    intent: str = ""
    """The longest intent one of them (a router) can produce."""

    def absorb(self, other: Prior, own: Prior) -> bool:
        """Join what `other` saw and wrote itself (`own`); True when that changed this."""
        before = (self.nodes, self.intent, len(self.keys), sum(self.keys.values()))
        self.nodes |= other.nodes | own.nodes
        self.intent = max(self.intent, other.intent, own.intent, key=len)
        for source in (other.keys, own.keys):
            for key, tokens in source.items():
                self.keys[key] = max(self.keys.get(key, 0), tokens)
        return before != (self.nodes, self.intent, len(self.keys), sum(self.keys.values()))


@dataclass(frozen=True)
class Scene:
    floor: Mapping[str, Any]
    ceiling: Mapping[str, Any]
    unknown: frozenset[str]
    """Keys earlier nodes may write."""


def priors(
    node_ids: list[str], edges: list[tuple[str, str]], own: Mapping[str, Prior]
) -> dict[str, Prior]:
    """Per node, what may be written before it: a fixpoint over the edges (loops included)."""
    seen = {node: Prior() for node in node_ids}
    changed = True
    while changed:  # everything only grows, so this ends: a pass or two per loop nesting
        changed = False
        for source, target in edges:
            if target in seen:
                changed = seen[target].absorb(seen[source], own[source]) or changed
    return seen


def scene(
    start: Mapping[str, Any],
    prior: Prior,
    node_ids: list[str],
    answers: Mapping[str, int],
    *,
    outputs_read: bool,
) -> Scene:
    """The node's floor and ceiling states. `answers`: each llm node's completion bound;
    `outputs_read`: stand in for earlier llm nodes' entries in `outputs` too (a walk over every
    earlier node, so only when a template reads it)."""
    ceiling = dict(start)
    for key, tokens in prior.keys.items():
        if tokens and STAND_IN_CHARS * tokens > len(str(ceiling.get(key) or "")):
            ceiling[key] = stand_in(tokens)
    if prior.intent and len(prior.intent) > len(str(ceiling.get("intent") or "")):
        ceiling["intent"] = prior.intent
    outputs = dict(start.get("outputs") or {})
    mask = prior.nodes if outputs_read else 0
    while mask:
        low = mask & -mask
        writer = node_ids[low.bit_length() - 1]
        if writer in answers:
            outputs[writer] = stand_in(answers[writer])
        mask ^= low
    ceiling["outputs"] = outputs
    return Scene(start, ceiling, frozenset(prior.keys))
