"""Jinja's filters and globals, each wrapped so that its size arguments are checked before it runs
and what it returns is counted against the evaluation's budget."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sized
from functools import wraps
from typing import Any

from jinja2.utils import generate_lorem_ipsum

from runtime.sandbox.bounds import as_int, char_width, printf_size, replace_size, text_of
from runtime.sandbox.meter import Meter, current_meter

Check = Callable[[Meter, tuple[Any, ...], dict[str, Any]], tuple[Any, ...] | None]
"""Looks at a filter's arguments (the value first) before it runs; may return new ones."""
_SLOT, _LIST = 8, 56
_WORD_STEPS, _WORD_BYTES = 5, 12
"""A lorem-ipsum word costs about as much time as 5 loop steps, and up to 12 bytes."""
_WRAP_WORK = 20_000
"""`wordwrap` cuts a long word in pieces a copy each: n*n/width of that is worth one step."""


def _param(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _center(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = as_int(_param(args, kwargs, 1, "width"), 80)
    meter.build(max(text_of(meter, args[0]), width))


def _indent(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = _param(args, kwargs, 1, "width")
    width = len(width) if isinstance(width, str) else as_int(width, 4)
    text = args[0]
    lines = text.count("\n") + 1 if isinstance(text, str) else text_of(meter, text)
    meter.build(text_of(meter, text) + lines * max(width, 0))


def _wordwrap(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    size = text_of(meter, args[0])
    width = max(as_int(_param(args, kwargs, 1, "width"), 79), 1)
    long_words = _param(args, kwargs, 2, "break_long_words") in (None, True)
    wrapstring = _param(args, kwargs, 3, "wrapstring") or "\n"
    meter.step(size + (size * size // (width * _WRAP_WORK) if long_words else 0))
    meter.build(size + (size // width + 1) * text_of(meter, wrapstring))


def _slice(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    slices = max(as_int(_param(args, kwargs, 1, "slices")), 0)
    items = len(args[0]) if isinstance(args[0], Sized) else 0
    meter.step(slices)
    meter.build(_LIST * slices + _SLOT * items)


def _batch(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if _param(args, kwargs, 2, "fill_with") is not None:
        meter.build(_SLOT * max(as_int(_param(args, kwargs, 1, "linecount")), 0))


def _format(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    template = args[0] if isinstance(args[0], str) else ""
    meter.build(text_of(meter, args[0]) + printf_size(meter, template, kwargs or args[1:]))


def _join(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    items = args[0] if isinstance(args[0], str) else list(meter.loop(args[0]))
    separator = text_of(meter, _param(args, kwargs, 1, "d") or "")
    meter.build(sum(text_of(meter, x) for x in items) + separator * len(items))
    return (items, *args[1:])


def _replace(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text, old, new = args[0], _param(args, kwargs, 1, "old"), _param(args, kwargs, 2, "new")
    count = _param(args, kwargs, 3, "count")
    if not isinstance(text, str) or not isinstance(old, str) or not isinstance(new, str):
        meter.build(text_of(meter, text) * builtins.max(text_of(meter, new), 1))
        return
    size = replace_size(text, old, new, -1 if count is None else count)
    meter.build(size * char_width(text, new))


def _list(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if isinstance(args[0], Sized):
        meter.build(_LIST + _SLOT * len(args[0]))


def _tojson(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    indent = _param(args, kwargs, 1, "indent")
    width = len(indent) if isinstance(indent, str) else as_int(indent)
    size = meter.size_of(args[0])
    meter.build(size + (_nesting(meter, args[0], width) if width > 0 else 0))


def _nesting(meter: Meter, value: Any, width: int) -> int:
    """Bytes `json.dumps(value, indent=width)` adds for line breaks and indentation."""
    total, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = list(item.values()) if isinstance(item, Mapping) else item
        if not isinstance(children, list | tuple):
            continue
        total += (len(children) + 1) * (width * depth + 1)
        meter.check_value(total)
        stack.extend((child, depth + 1) for child in children)
    return total


def _twice(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    meter.build(2 * text_of(meter, args[0]))


def _urlize(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = args[0] if isinstance(args[0], str) else ""
    links = text.count(".") + text.count(":") + text.count("@")
    extra = sum(text_of(meter, _param(args, kwargs, i, n) or "") for i, n in _URLIZE_ATTRS)
    meter.build(2 * text_of(meter, args[0]) + links * (64 + extra))


_URLIZE_ATTRS = ((3, "target"), (4, "rel"))


def _escape(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text = args[0]
    if hasattr(text, "__html__"):
        return
    if not isinstance(text, str):
        meter.build(5 * text_of(meter, text))
        return
    grow = 4 * (text.count("&") + text.count("'") + text.count('"'))
    meter.build(text_of(meter, text) + grow + 3 * (text.count("<") + text.count(">")))


def _urlencode(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    meter.build(12 * text_of(meter, args[0]))


def _string(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    text_of(meter, args[0])


def _sum(meter: Meter, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
    start = _param(args, kwargs, 2, "start")
    if not isinstance(start, list | tuple | str):
        return None
    items = list(meter.loop(args[0]))
    total = meter.size_of(start) + sum(meter.size_of(x) for x in items)
    meter.check_value(total)
    meter.step(len(items) * total // (_SLOT * 1000))  # each `+` copies what came before
    return (items, *args[1:])


_CHECKS: dict[str, Check] = {
    "batch": _batch,
    "center": _center,
    "e": _escape,
    "escape": _escape,
    "forceescape": _escape,
    "format": _format,
    "indent": _indent,
    "join": _join,
    "list": _list,
    "pprint": _twice,
    "replace": _replace,
    "slice": _slice,
    "string": _string,
    "sum": _sum,
    "tojson": _tojson,
    "urlencode": _urlencode,
    "urlize": _urlize,
    "wordwrap": _wordwrap,
}


def bounded_filters(found: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """`found` (Jinja's filters), each checked before it runs and counted after."""
    return {name: _bounded(func, _CHECKS.get(name)) for name, func in found.items()}


def _bounded(func: Callable[..., Any], check: Check | None) -> Callable[..., Any]:
    skip = 0 if getattr(func, "jinja_pass_arg", None) is None else 1

    @wraps(func)  # keeps `jinja_pass_arg`, so Jinja still passes the context first
    def bounded(*args: Any, **kwargs: Any) -> Any:
        meter = current_meter()
        if len(args) <= skip:
            return func(*args, **kwargs)
        if check is not None:
            checked = check(meter, args[skip:], kwargs)
            if checked is not None:
                args = (*args[:skip], *checked)
        return meter.account(func(*args, **kwargs), args[skip])

    return bounded


def _range(*args: int) -> range:
    items = range(*args)
    current_meter().take_range(len(items))
    return items


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    meter = current_meter()
    words = builtins.max(as_int(n), 0) * builtins.max(as_int(max), 0)
    meter.step(words * _WORD_STEPS)
    meter.build(words * _WORD_BYTES)
    return generate_lorem_ipsum(n, html, min, max)


def bounded_globals() -> dict[str, Callable[..., Any]]:
    """`range` (one budget of items per evaluation) and `lipsum` (words counted as steps)."""
    return {"range": _range, "lipsum": _lipsum}
