"""The Jinja environment templates run in: Jinja's immutable sandbox, with every place a template
can loop, call or build a value routed through the evaluation's meter.

- The code generator wraps every `{% for %}` iterable in a counting iterator, routes `~`, list,
  tuple and dict literals through size checks, and folds no expression at compile time (no
  optimizer, and a `finalize` that needs the runtime context), so no filter runs while compiling
  and no big constant lands in a cached template.
- `call_binop` (`+ * ** %`), `call` (macros, methods, globals), `concat` (every buffer Jinja joins:
  macros, `{% set %}` blocks, filter blocks) and the `str.format` formatter check sizes before
  building; filters and globals are wrapped in `runtime.sandbox.filters`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import update_wrapper
from types import BuiltinMethodType, MethodType
from typing import Any

from jinja2 import ChainableUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, Undefined, markup_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import pass_eval_context
from markupsafe import EscapeFormatter, Markup

from runtime.sandbox import bounds, filters
from runtime.sandbox.meter import current_meter, text_size

LOOP_FILTER = "_sandbox_loop"
"""The filter the code generator wraps every loop's iterable in."""
_READ_ONLY_OWNERS = (dict, list, tuple)
"""Whose methods return what they hold (`get`, `items`, `index`) rather than new values."""


class _CodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None)
        self._printed: list[str] = []
        super().visit_Template(node, frame)

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        """`{{ x }}` prints `x` at once when it is a str, an int or a float (the common cases,
        each printing short or refusing to), else through `sandbox_text`, which bounds it first."""
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super()._output_child_pre(node, frame, finalize)
            return
        value, kind = self.temporary_identifier(), self.temporary_identifier()
        self._printed.append(f"{value},{kind}")
        self.write(f"({value} if ({kind} := type({value} := ")

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super()._output_child_post(node, frame, finalize)
            return
        value, kind = self._printed.pop().split(",")
        self.write(f")) is str else str({value}) if {kind} is int or {kind} is float")
        self.write(f" else environment.sandbox_text({value}))")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.sandbox_concat(context.eval_ctx, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._built(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._built(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "store":
            super().visit_Tuple(node, frame)
        else:
            self._built(super().visit_Tuple, node, frame)

    def _built(self, visit: Any, node: nodes.Node, frame: Frame) -> None:
        self.write("environment.sandbox_built(")
        visit(node, frame)
        self.write(")")


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: Any) -> Any:
    """Bound what `{{ value }}` prints; needing the context, it also keeps Jinja from folding
    output expressions into constants at compile time."""
    if type(value) is not str:
        current_meter().size_of(value)
    return value


class _BoundedFormatter(SandboxedFormatter):
    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            current_meter().size_of(value)
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        meter = current_meter()
        meter.build(bounds.format_size(meter, value, format_spec))
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded in time and memory by the current evaluation's meter."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        # Missing state keys render as "" (and `a.b.c` on a missing `a` too), like Dify prompts.
        super().__init__(
            autoescape=False, undefined=ChainableUndefined, optimized=False, finalize=_finalize
        )
        self.filters = filters.bounded_filters(self.filters)
        self.filters[LOOP_FILTER] = _counted
        self.globals.update(filters.bounded_globals())
        self.concat = self.sandbox_join  # type: ignore[method-assign]

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        bounds.check_binop(current_meter(), operator, left, right)
        return self.binop_table[operator](left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        meter = current_meter()
        meter.step()
        fmt = self.wrap_str_format(obj)
        if fmt is not None:
            obj = fmt
        elif isinstance(obj, LoopContext) and args:  # a recursive loop's `loop(children)`
            args = (meter.loop(args[0]), *args[1:])
        elif type(obj) is BuiltinMethodType:
            if isinstance(obj.__self__, _READ_ONLY_OWNERS):
                return super().call(context, obj, *args, **kwargs)
            args = bounds.check_method(meter, obj, args, kwargs)
        return meter.account(super().call(context, obj, *args, **kwargs))

    def sandbox_text(self, value: Any) -> str:
        """What `{{ value }}` prints when `value` is not a str, its size checked first."""
        if not isinstance(value, int | float | Undefined):  # these print short, or refuse to
            current_meter().size_of(value)
        return str(value)

    def sandbox_join(self, parts: Iterable[str]) -> str:
        """Join a buffer of output (a macro's, a `{% set %}` block's), its size checked first."""
        parts = parts if isinstance(parts, list) else list(parts)
        current_meter().build(sum(map(text_size, parts)))
        return "".join(parts)

    def sandbox_concat(self, eval_ctx: EvalContext, values: tuple[Any, ...]) -> str:
        """`a ~ b`: each side's text bounded, then their total, before they are joined."""
        if eval_ctx.autoescape:
            current_meter().build(sum(len(self.sandbox_text(v)) for v in values))
            return str(current_meter().account(markup_join(values)))
        texts = [v if type(v) is str else self.sandbox_text(v) for v in values]
        size = sum(map(len, texts))
        current_meter().build(size if all(map(str.isascii, texts)) else 4 * size)
        return "".join(texts)

    def sandbox_built(self, value: Any) -> Any:
        """A list, tuple or dict literal: refused when its elements, nested ones counted at every
        use, pass one value's cap (`[a, a]` nested 40 deep is 2**40 times `a` printed)."""
        return current_meter().account(value)

    def wrap_str_format(self, value: Any) -> Any:
        """Jinja's sandboxed `str.format`/`format_map`, with a formatter that checks each field's
        width and precision before formatting it."""
        if not isinstance(value, MethodType | BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        formatter: SandboxedFormatter
        if isinstance(owner, Markup):
            formatter = _BoundedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _BoundedFormatter(self)
        return update_wrapper(_formatting(formatter, owner, value.__name__ == "format_map"), value)


def _formatting(formatter: SandboxedFormatter, owner: str, is_map: bool) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> str:
        if not is_map:
            return type(owner)(formatter.vformat(owner, args, kwargs))
        if kwargs or len(args) != 1 or not isinstance(args[0], Mapping):
            raise TypeError("format_map() takes exactly one mapping")
        return type(owner)(formatter.vformat(owner, (), args[0]))

    return wrapper


def _counted(iterable: Iterable[Any]) -> Iterable[Any]:
    return current_meter().loop(iterable)
