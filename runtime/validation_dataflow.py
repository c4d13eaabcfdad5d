"""A db node's `params` never take a model's or a remote server's output (SPEC §2 `db`).

The check follows the state's data flow. A node whose output is not the spec author's to decide
(an `llm` or `image` node, a router that asks a model — `llm` or `semantic` — and an `http`
node) taints what it writes: its result key (`text_result`, `image_result`, `http_result`,
`intent`, or its `output_key`), `outputs.<its id>`, and `errors`. An aggregator that reads a
tainted key taints what it writes (`final_output` or its `output_key`): `merge` reads every
content node's output, `priority` its `order`, `template` what its template reads, `function`
the whole state; repeated until nothing changes. A db param whose template reads a tainted key
is an `invalid_metadata` error naming the param.

Conservative on purpose: order is ignored (a writer anywhere in the spec taints the key,
upstream or not: parallel branches and loops make "upstream" a guess), and `outputs` read
whole or with a computed key counts as reading every node's output. Plugin nodes are the
operator's code and are not traced.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.errors import ErrorType
from runtime.validation_report import dotted, items, subject, text

if TYPE_CHECKING:
    from jinja2 import nodes as jinja_nodes

    from runtime.validation_checks import Context

RESULT_KEYS = {
    "llm": "text_result",
    "image": "image_result",
    "http": "http_result",
    "db": "db_result",
    "aggregator": "final_output",
}
UNTRUSTED_TYPES = frozenset({"llm", "image", "http"})
MODEL_ROUTERS = frozenset({"llm", "semantic"})
NOT_MERGED = frozenset({"input", "router"})
ANY = "*"
ANY_OUTPUT = "outputs.*"
MERGED = "outputs of content nodes"
"""What a merge aggregator reads: every node's output but routers' and inputs'."""


@dataclass(frozen=True)
class _Node:
    index: int
    ident: str
    type: str
    meta: Any

    @property
    def strategy(self) -> str | None:
        inner = getattr(self.meta, "root", self.meta)
        return getattr(inner, "strategy", None)

    def writes(self) -> set[str]:
        key = getattr(self.meta, "output_key", None) or getattr(
            getattr(self.meta, "root", None), "output_key", None
        )
        written = {f"outputs.{self.ident}", key or RESULT_KEYS.get(self.type, "")}
        if self.type == "router":
            written.add("intent")
        return written - {""}

    def untrusted(self) -> bool:
        return self.type in UNTRUSTED_TYPES or (
            self.type == "router" and self.strategy in MODEL_ROUTERS
        )


def check_db_params(ctx: Context) -> None:
    nodes = list(_nodes(ctx))
    tainted = _tainted(nodes)
    if not tainted:
        return
    for node in nodes:
        if node.type != "db":
            continue
        for loc, source in node.meta.templates():
            for read in sorted(_reads(source)):
                writer = _writer(read, tainted)
                if writer is not None:
                    _report(ctx, node, loc, read, writer)
                    break


def _nodes(ctx: Context) -> Iterator[_Node]:
    for i, raw in items(ctx.obj, "nodes"):
        ident, type_name = text(raw, "id"), text(raw, "type")
        meta = ctx.metadata_by_id.get(ident or "")
        if ident and type_name and meta is not None and ctx.node_index.get(ident) == i:
            yield _Node(i, ident, type_name, meta)


def _tainted(nodes: list[_Node]) -> dict[str, _Node]:
    """Every tainted state key (`outputs.<id>` for one node's output), with a node writing it.

    A worklist over keys: each key is taken once, and each aggregator is woken by the first
    tainted key it reads, so the work is linear in the spec (no pass per aggregator)."""
    tainted: dict[str, _Node] = {}
    for node in nodes:
        if node.untrusted():
            for key in sorted(node.writes() | {"errors"}):
                tainted.setdefault(key, node)
    merged = {f"outputs.{n.ident}" for n in nodes if n.type not in NOT_MERGED}
    readers: dict[str, list[_Node]] = {}
    for node in nodes:
        if node.type == "aggregator":
            for token in _aggregator_reads(node):
                readers.setdefault(token, []).append(node)
    todo = list(tainted)
    while todo:
        key = todo.pop()
        tokens = [key, ANY]
        tokens += [ANY_OUTPUT] if key.startswith("outputs.") else []
        tokens += [MERGED] if key in merged else []
        for node in (n for token in tokens for n in readers.pop(token, ())):
            fresh = sorted(node.writes() - tainted.keys())
            tainted.update(dict.fromkeys(fresh, node))
            todo += fresh
    return tainted


def _aggregator_reads(node: _Node) -> set[str]:
    inner = getattr(node.meta, "root", node.meta)
    if node.strategy == "merge":
        return {MERGED}
    if node.strategy == "priority":
        return set(getattr(inner, "order", ()))
    if node.strategy == "template":
        return _reads(getattr(inner, "template", ""))
    return {ANY}  # a function reads the whole state


def _writer(read: str, tainted: dict[str, _Node]) -> _Node | None:
    if read == ANY:
        return next(iter(tainted.values()), None)
    if read == ANY_OUTPUT:
        return next((n for k, n in tainted.items() if k.startswith("outputs.")), None)
    return tainted.get(read)


def _reads(source: str) -> set[str]:
    """The state keys a template reads: top-level names, and `outputs.<id>` for a constant
    `outputs.x` / `outputs['x']` (`outputs.*` for any other use of `outputs`)."""
    from jinja2 import TemplateSyntaxError, meta, nodes

    from runtime.sandbox.templates import ENV

    try:
        tree = ENV.parse(source)
    except (TemplateSyntaxError, RecursionError):
        return set()  # reported as invalid_template
    names = set(meta.find_undeclared_variables(tree))
    if "outputs" in names:
        names.discard("outputs")
        names |= _output_reads(tree, nodes)
    return names


def _output_reads(tree: jinja_nodes.Template, nodes: Any) -> set[str]:
    found: set[str] = set()
    constant: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "outputs":
            key = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg, nodes)
            if key is not None:
                found.add(f"outputs.{key}")
                constant.add(id(target))
    for name in tree.find_all(nodes.Name):
        if name.name == "outputs" and id(name) not in constant:
            found.add(ANY_OUTPUT)
    return found


def _constant(arg: Any, nodes: Any) -> str | None:
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None


def _report(
    ctx: Context, node: _Node, loc: tuple[str | int, ...], read: str, writer: _Node
) -> None:
    who = subject(("nodes", node.index), ctx.obj)[0]
    what = {
        "http": "a remote server's answer",
        "aggregator": "made from a model's or a server's output",
    }.get(writer.type, "a model's output")
    via = f"the {writer.type} node '{writer.ident}'"
    msg = (
        f"{who}: the param 'metadata.{dotted(loc)}' reads '{read}', which {via} writes "
        f"({what}). A db node's params never take a model's or a remote server's output: take "
        "the value from the run's input or from a db result."
    )
    ctx.report.add(ErrorType.INVALID_METADATA, msg, ("nodes", node.index, "metadata", *loc))
