"""Jinja templates in a sandbox: checked before any run, rendered with a bound on their size.

A template may read the state and nothing else. The sandbox (ImmutableSandboxedEnvironment) blocks
`__class__.__mro__` tricks and mutation at render time; `template_problem` refuses them earlier, at
validation, by walking the parsed template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runtime.errors import TemplateRenderError

DEFAULT_MAX_OUTPUT_CHARS = 200_000
_CACHE_SIZE = 4096

MAX_RANGE_ITEMS = 100_000
"""Items all `range()` calls of one render may produce together (nested loops multiply)."""
MAX_BINOP_SIZE = 1_000_000
"""Longest string or list a `*` or `+` may build, and the largest `**` exponent is 1,000."""

_range_budget: ContextVar[list[int]] = ContextVar("template_range_budget")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded in time as well as output: `range` draws on one budget
    per render, and `*`, `**` and `+` refuse to build huge values."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 1000:
            raise TemplateError("a power with an exponent over 1000 is not allowed")
        if operator in ("*", "+") and _size(left, right, operator) > MAX_BINOP_SIZE:
            raise TemplateError(f"an expression would build a value over {MAX_BINOP_SIZE} long")
        return super().call_binop(context, operator, left, right)


def _size(left: Any, right: Any, operator: str) -> int:
    sized = [x for x in (left, right) if isinstance(x, str | list | tuple)]
    if not sized:
        return 0
    if operator == "+":
        return sum(len(x) for x in sized)
    count = next((x for x in (left, right) if isinstance(x, int)), 1)
    return len(sized[0]) * max(count, 0)


def _bounded_range(*args: int) -> Any:
    items = range(*args)
    budget = _range_budget.get([MAX_RANGE_ITEMS])
    if len(items) > budget[0]:
        raise TemplateError(
            f"the template's loops would take more than {MAX_RANGE_ITEMS} range() steps"
        )
    budget[0] -= len(items)
    return items


# Missing state keys render as "" (and `a.b.c` on a missing `a` too), like LangGraph/Dify prompts.
ENV = _BoundedSandbox(autoescape=False, undefined=ChainableUndefined)
ENV.globals["range"] = _bounded_range

_NO_LOADER_TAGS = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)

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


def _is_simple(source: str) -> bool:
    if "{" in _SIMPLE_EXPR.sub("", source):
        return False
    return not any(m.group(1) in _JINJA_KEYWORDS for m in _FIRST_NAME.finditer(source))


@lru_cache(maxsize=_CACHE_SIZE)
def template_problem(source: str) -> str | None:
    """Return why `source` is not an acceptable template, or None when it is."""
    if _is_simple(source):
        return None
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
    if node.name not in ENV.filters:
        return f"uses the filter '{node.name}', which does not exist"
    if node.name == "attr" and node.args:
        return _private_key_problem(node.args[0])
    return None


@lru_cache(maxsize=_CACHE_SIZE)
def _compiled(source: str) -> Any:
    return ENV.from_string(source)


def render_template(
    source: str,
    state: Mapping[str, Any],
    *,
    max_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    node_id: str | None = None,
) -> str:
    """Render `source` against `state`, refusing output longer than `max_chars`.

    Raises:
        TemplateRenderError: the template fails, breaks the sandbox's rules or renders too much.
    """
    token = _range_budget.set([MAX_RANGE_ITEMS])
    try:
        chunks = _compiled(source).generate(dict(state))
        return _bounded_join(chunks, max_chars, node_id)
    except TemplateRenderError:
        raise
    except (TemplateError, ArithmeticError, TypeError, ValueError, RecursionError) as exc:
        raise TemplateRenderError(f"The template failed to render: {exc}", node_id=node_id) from exc
    finally:
        _range_budget.reset(token)


def _bounded_join(chunks: Any, max_chars: int, node_id: str | None) -> str:
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_chars:
            msg = f"The template rendered more than {max_chars} characters."
            raise TemplateRenderError(msg, node_id=node_id)
        parts.append(chunk)
    return "".join(parts)


def clear_caches() -> None:
    """Forget cached checks and compiled templates (benchmarks and tests)."""
    template_problem.cache_clear()
    _compiled.cache_clear()
