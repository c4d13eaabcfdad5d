"""Jinja templates in a sandbox: checked before any run, rendered within the sandbox's caps.

A template may read the state and nothing else. The sandbox (`BoundedSandbox`, Jinja's
ImmutableSandboxedEnvironment) blocks `__class__.__mro__` tricks and mutation at render time;
`template_problem` refuses them earlier, at validation, by walking the parsed template. Every
render runs under a fresh meter (`runtime.sandbox.meter`) that stops it at the first cap it would
pass: its deadline, its steps, the size of one value, the bytes it built, its output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import Template, TemplateError, nodes

from runtime.errors import TemplateLimitExceeded, TemplateRenderError
from runtime.sandbox import meter as meters
from runtime.sandbox.cache import WeightedCache
from runtime.sandbox.environment import LOOP_FILTER, BoundedSandbox
from runtime.sandbox.limits import current_limits, setting_name

ENV = BoundedSandbox()
_ENTRY_OVERHEAD = 1024
"""What a cached entry is taken to weigh besides its source (a compiled template is ~10x that)."""

_NO_LOADER_TAGS = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
_READ_ONLY_NODES = (
    *(nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr, nodes.Getitem),
    *(nodes.Slice, nodes.CondExpr, nodes.If, nodes.And, nodes.Or, nodes.Not, nodes.Neg),
    *(nodes.Pos, nodes.Compare, nodes.Operand, nodes.Sub, nodes.Div, nodes.FloorDiv, nodes.Test),
)

# The common case — literal text plus `{{ a.b[0].c }}` — is checked without the full parser (which
# costs ~100 µs a template); anything else goes through ENV.parse.
_SIMPLE_EXPR = re.compile(
    r"\{\{\s*[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*|\[(?:0|[1-9][0-9]*)\])*\s*\}\}"
)
_JINJA_KEYWORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "elif", "true", "false", "none", "recursive"}
    | {"True", "False", "None"}
)
_FIRST_NAME = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_]*)")


def _cache_bytes() -> int:
    return current_limits().template_cache_bytes


_problems: WeightedCache[str | None] = WeightedCache(_cache_bytes, overhead=_ENTRY_OVERHEAD)
_templates: WeightedCache[tuple[Template, bool]] = WeightedCache(
    _cache_bytes, overhead=_ENTRY_OVERHEAD
)


def _compile(source: str) -> tuple[Template, bool]:
    """The compiled template, and whether it runs with no meter: it only reads and prints the
    state, and chooses (`if`, `and`, `==`), so it does no more work than the state is big."""
    tree = ENV.parse(source)
    reads_only = all(isinstance(node, _READ_ONLY_NODES) for node in tree.find_all(nodes.Node))
    return ENV.from_string(tree), reads_only


def _is_simple(source: str) -> bool:
    if "{" in _SIMPLE_EXPR.sub("", source):
        return False
    return not any(m.group(1) in _JINJA_KEYWORDS for m in _FIRST_NAME.finditer(source))


def template_problem(source: str) -> str | None:
    """Return why `source` is not an acceptable template, or None when it is."""
    if _is_simple(source):
        return None
    return _problems.get(source, _problem)


def _problem(source: str) -> str | None:
    try:
        tree = ENV.parse(source)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        where = f" (template line {lineno})" if lineno else ""
        return f"does not parse{where}: {exc.message or exc}"
    except RecursionError:
        return "is nested too deeply to parse"
    except (ValueError, UnicodeError) as exc:
        return f"does not parse: {exc}"
    return _sandbox_problem(tree)


def _sandbox_problem(tree: nodes.Template) -> str | None:
    for node in tree.find_all(
        (nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test, *_NO_LOADER_TAGS)
    ):
        problem = _node_problem(node)
        if problem:
            return problem
    return None


def _node_problem(node: nodes.Node) -> str | None:
    if isinstance(node, _NO_LOADER_TAGS):
        return "includes or imports another template; a template may only read the state"
    if isinstance(node, nodes.Getattr):
        return _private_name_problem(node.attr)
    if isinstance(node, nodes.Getitem):
        return _private_key_problem(node.arg)
    if isinstance(node, nodes.Filter):
        return _filter_problem(node)
    if isinstance(node, nodes.Test) and node.name not in ENV.tests:
        return f"uses the test '{node.name}', which does not exist"
    return None


def _private_name_problem(name: str) -> str | None:
    if name.startswith("_"):
        return f"reads '{name}'; names starting with '_' are not readable from a template"
    return None


def _private_key_problem(arg: nodes.Expr) -> str | None:
    if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
        return _private_name_problem(arg.value)
    return None


def _filter_problem(node: nodes.Filter) -> str | None:
    if node.name not in ENV.filters or node.name == LOOP_FILTER:
        return f"uses the filter '{node.name}', which does not exist"
    if node.name == "attr" and node.args:
        return _private_key_problem(node.args[0])
    return None


def template_is_light(source: str) -> bool:
    """True when rendering `source` only reads and prints the state (no loop, call or value
    building): it costs no more than the state is big, so it may run where blocking matters."""
    if "{" not in source:
        return True
    try:
        return _templates.get(source, _compile)[1]
    except Exception:  # it does not parse: rendering it fails at once, wherever it runs
        return True


def render_template(
    source: str,
    state: Mapping[str, Any],
    *,
    max_chars: int | None = None,
    node_id: str | None = None,
) -> str:
    """Render `source` against `state` within the sandbox's caps (`runtime.sandbox.limits`) and
    the deadline the runtime set (`evaluation_deadline`).

    Args:
        max_chars: the longest output allowed; by default the `template_max_output_chars` cap.

    Raises:
        TemplateLimitExceeded: the render went over a cap (`limit` says which) or its deadline.
        TemplateRenderError: the template fails (a bad value, a sandbox refusal).
    """
    token = None
    try:
        template, reads_only = _templates.get(source, _compile)
        if not reads_only:
            token = meters.start(meters.Meter("template"))
        return _bounded_join(template.generate(dict(state)), max_chars)
    except TemplateRenderError as exc:
        exc.node_id = exc.node_id or node_id
        raise
    except MemoryError as exc:
        msg = "The template ran out of memory (settings AGENTFLOW_TEMPLATE_MAX_*_BYTES)."
        raise TemplateLimitExceeded(msg, limit="memory", node_id=node_id) from exc
    except Exception as exc:  # the template's own fault: a bad operand, a missing key, a refusal
        message = f"The template failed to render: {type(exc).__name__}: {exc}"
        raise TemplateRenderError(message, node_id=node_id) from exc
    finally:
        if token is not None:
            meters.stop(token)


def _bounded_join(chunks: Iterable[str], max_chars: int | None) -> str:
    limit = current_limits().template_max_output_chars if max_chars is None else max_chars
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            _too_long(limit, max_chars is None)
        parts.append(chunk)
    return "".join(parts)


def _too_long(limit: int, from_setting: bool) -> None:
    setting = f" (setting {setting_name('template_max_output_chars')})" if from_setting else ""
    message = f"The template rendered more than {limit} characters{setting}."
    raise TemplateLimitExceeded(message, limit="template_max_output_chars")


def clear_caches() -> None:
    """Forget cached checks and compiled templates (benchmarks and tests)."""
    _problems.clear()
    _templates.clear()
