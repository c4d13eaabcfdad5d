"""What both converters need: node ids and state keys, LLM sources, CEL text, and the graph
with the nodes that did not map bridged over."""

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from workflows.imports.report import ImportOptions, ImportReport

NODE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
STATE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
PROVIDER_KINDS = {
    "openai": "openai",
    "azure_openai": "azure_openai",
    "azure": "azure_openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
}
KEY_ENVS = {
    "openai": "OPENAI_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}
SAMPLING = ("temperature", "max_tokens", "top_p", "frequency_penalty", "presence_penalty")


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def slug(raw: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", raw)


class Ids:
    """Original node ids to AgentFlow node ids (valid and unique) and state keys."""

    def __init__(self) -> None:
        self.nodes: dict[str, str] = {}

    def add(self, original: str, kind: str) -> str:
        wanted = original if NODE_ID.match(original) and original != "END" else None
        wanted = wanted or f"{slug(kind) or 'node'}_{slug(original)}"[:64]
        candidate, n = wanted, 1
        while candidate in self.nodes.values():
            n += 1
            candidate = f"{wanted[:60]}_{n}"
        self.nodes[original] = candidate
        return candidate

    def key(self, original: str) -> str:
        """The state key a node's output is written under (its `output_key`)."""
        return state_key(self.nodes.get(original, original))


def state_key(name: str) -> str:
    key = slug(name)[:64]
    return key if STATE_KEY.match(key) else f"_{key}"[:64]


def cel_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def cel_literal(value: Any) -> str:
    """A number stays a number (CEL compares 3 and 3.0 apart: both sides become doubles)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{float(value)!r}"
    try:
        return f"{float(text(value))!r}"
    except ValueError:
        return cel_string(text(value))


class Unmappable(Exception):
    """This node cannot be converted; the message says why."""


CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|cookie", re.IGNORECASE)
"""A header that carries a credential, which a spec never holds (literal_secret)."""


def http_source(inline: dict[str, dict[str, Any]], url_text: str, raw: str) -> tuple[str, str]:
    """An inline http source for a request node's URL (its scheme and host), and the path (with
    its query) the node asks for there.

    Raises:
        Unmappable: the URL has no fixed scheme and host (a template picks them).
    """
    url = urlsplit(url_text)
    if url.scheme not in ("http", "https") or not url.netloc or "{{" in url.netloc:
        raise Unmappable("its URL has no fixed scheme and host for an http source's base_url")
    source_id = state_key(f"http_{raw}")[:64]
    inline[source_id] = {
        "id": source_id,
        "kind": "http",
        "config": {"base_url": f"{url.scheme}://{url.netloc}"},
    }
    return source_id, url.path + (f"?{url.query}" if url.query else "")


def without_credentials(
    headers: dict[str, str], report: ImportReport, where: str, source_id: str
) -> dict[str, str]:
    """The headers a spec may carry; each credential header left out is noted in the report."""
    kept = {}
    for name, value in headers.items():
        if not name:
            continue
        if CREDENTIAL_HEADER.search(name):
            report.note(
                f"{where}: header {name!r} was left out; put its credential in "
                f"source {source_id!r} (auth_method and a *_env variable)."
            )
        else:
            kept[name] = value
    return kept


@dataclass
class LLMSources:
    """One source per provider and model: a stored one the caller named in `source_map`, or
    an inline one whose key comes from `api_key_env` (or the provider's usual variable)."""

    options: ImportOptions
    report: ImportReport
    inline: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ref(self, provider: str, model: str, extra: dict[str, Any] | None = None) -> str | None:
        """The `source` for a node on `provider`'s `model`; None when no kind fits."""
        short = provider.rsplit("/", 1)[-1].lower()
        if short in self.options.source_map or provider in self.options.source_map:
            return self.options.source_map.get(short) or self.options.source_map[provider]
        kind = PROVIDER_KINDS.get(short)
        if kind is None:
            return None
        source_id = slug(f"{short}-{model}".replace(".", "-"))[:64] or short
        if source_id not in self.inline:
            env = self.options.api_key_env or KEY_ENVS[kind]
            self.inline[source_id] = {
                "id": source_id,
                "kind": kind,
                "config": {
                    "model_name" if kind != "azure_openai" else "deployment": model,
                    "api_key_env": env,
                    **(extra or {}),
                },
            }
            if self.options.api_key_env is None:
                self.report.note(
                    f"Source {source_id!r} reads its key from {env}; pass `api_key_env` (a "
                    f"variable you are granted) or `source_map` {{{short!r}: <stored source>}} "
                    "to choose another."
                )
        return source_id

    def sources(self) -> list[dict[str, Any]]:
        return list(self.inline.values())


def sampling(params: dict[str, Any]) -> dict[str, Any]:
    """Sampling overrides the llm node takes, from a provider's parameter names."""
    names = {
        "maxTokens": "max_tokens",
        "topP": "top_p",
        "frequencyPenalty": "frequency_penalty",
        "presencePenalty": "presence_penalty",
    }
    out: dict[str, Any] = {}
    for raw, value in params.items():
        name = names.get(raw, raw)
        if name in SAMPLING and isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = int(value) if name == "max_tokens" else float(value)
        elif name in SAMPLING and isinstance(value, str):
            try:
                out[name] = int(value) if name == "max_tokens" else float(value)
            except ValueError:
                continue
    return out


Edge = tuple[str, str, str | None]
"""(from, to, condition) over original node ids."""


def bridged(edges: list[Edge], kept: set[str]) -> list[Edge]:
    """The edges with every node not kept bridged over: its predecessors lead to its
    successors, under the condition of the edge into it."""
    reach = _kept_reachable(edges, kept)
    out = [e for e in edges if e[0] in kept and e[1] in kept]
    for start, end, condition in edges:
        if start in kept and end not in kept:
            out += [(start, target, condition) for target in reach.get(end, ())]
    seen: set[Edge] = set()
    return [e for e in out if not (e in seen or seen.add(e))]  # type: ignore[func-returns-value]


def _kept_reachable(edges: list[Edge], kept: set[str]) -> dict[str, list[str]]:
    """For each node not kept, the kept nodes reached from it through nodes not kept.

    One pass over the edges in post-order (successors first) settles an acyclic graph; a cycle
    among dropped nodes takes a few more. A document's graph is the uploader's to shape, so
    this never walks the graph again per edge (that took minutes for 6,000 edges)."""
    order = sorted(kept)
    bit = {node: 1 << i for i, node in enumerate(order)}
    after: dict[str, list[str]] = {}
    for start, end, _ in edges:
        if start not in kept:
            after.setdefault(start, []).append(end)
    reach: dict[str, int] = dict.fromkeys(after, 0)
    postorder: list[str] = []
    visited: set[str] = set()
    for root in after:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(after[root]))]
        while stack:
            node, successors = stack[-1]
            child = next((s for s in successors if s in after and s not in visited), None)
            if child is None:
                stack.pop()
                postorder.append(node)
            else:
                visited.add(child)
                stack.append((child, iter(after[child])))
    changed = True
    while changed:
        changed = False
        for node in postorder:
            found = reach[node]
            for end in after[node]:
                found |= bit.get(end, 0) | reach.get(end, 0)
            if found != reach[node]:
                reach[node], changed = found, True
    return {
        node: [order[i] for i in range(found.bit_length()) if found >> i & 1]
        for node, found in reach.items()
    }


def spec_of(
    *,
    name: str,
    description: str,
    start: str,
    nodes: list[dict[str, Any]],
    edges: list[Edge],
    ids: Ids,
    sources: list[dict[str, Any]],
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name[:200] or "imported",
        "description": description,
        "start_node": ids.nodes[start],
        "nodes": nodes,
        "edges": [
            {"from": ids.nodes[a], "to": ids.nodes[b], **({"condition": c} if c else {})}
            for a, b, c in edges
        ],
    }
    if sources:
        spec["sources"] = sources
    return spec
