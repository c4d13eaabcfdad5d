"""Jinja templates in a sandbox: checked before any run, rendered with a bound on their size.

A template may read the state and nothing else. The sandbox (ImmutableSandboxedEnvironment) blocks
`__class__.__mro__` tricks and mutation at render time; `template_problem` refuses them earlier, at
validation, by walking the parsed template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runtime.errors import TemplateRenderError

DEFAULT_MAX_OUTPUT_CHARS = 200_000
_CACHE_SIZE = 4096

# Missing state keys render as "" (and `a.b.c` on a missing `a` too), like LangGraph/Dify prompts.
ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)

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
    try:
        chunks = _compiled(source).generate(dict(state))
        return _bounded_join(chunks, max_chars, node_id)
    except TemplateRenderError:
        raise
    except (TemplateError, ArithmeticError, TypeError, ValueError, RecursionError) as exc:
        raise TemplateRenderError(f"The template failed to render: {exc}", node_id=node_id) from exc


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
