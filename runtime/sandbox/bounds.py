"""How big a value an operation would build, worked out from its operands before it runs.

Each `check_*` raises (through the meter) when the value would pass a cap, and counts it against
the evaluation's budget otherwise; none of them builds the value to find out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from runtime.sandbox.meter import Meter, text_size

_SLOT = 8
_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-+ #0]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?[hlL]?(?P<conv>.?)",
    re.S,
)
_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)(?P<group>[,_]?)(?:\.(?P<prec>\d+))?[a-zA-Z%]?",
    re.S,
)
_FLOAT_TEXT = 330
"""Characters a float takes in fixed notation at most (1e308 has 309 digits)."""


def as_int(value: Any, default: int = 0) -> int:
    """`value` when it is an int (Python raises its own error on anything else, later)."""
    return value if isinstance(value, int) else default


def text_of(meter: Meter, value: Any) -> int:
    """Bytes `str(value)` would take."""
    if isinstance(value, float):
        return 24
    return meter.size_of(value)


def _number_text(meter: Meter, value: Any, conversion: str) -> int:
    if isinstance(value, float) and conversion in "fF%":
        return _FLOAT_TEXT
    return text_of(meter, value)


def check_binop(meter: Meter, operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` when it would build too big a value."""
    if operator == "**":
        _check_power(meter, left, right)
    elif operator == "*":
        _check_product(meter, left, right)
    elif operator == "+":
        _check_sum(meter, left, right)
    elif operator == "%" and isinstance(left, str):
        meter.build(printf_size(meter, left, right))


def _check_power(meter: Meter, base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        meter.int_bits(math.log2(abs(base)) * exponent)


def _check_product(meter: Meter, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        meter.int_bits(left.bit_length() + right.bit_length())
        return
    sequence, count = (left, right) if isinstance(right, int) else (right, left)
    if not isinstance(count, int) or count <= 0:
        return
    if isinstance(sequence, str):
        meter.build(text_size(sequence) * count)
    elif isinstance(sequence, bytes):
        meter.build(len(sequence) * count)
    elif isinstance(sequence, list | tuple):
        meter.check_value(meter.size_of(sequence) * count)
        meter.build(_SLOT * len(sequence) * count)


def _check_sum(meter: Meter, left: Any, right: Any) -> None:
    if isinstance(left, str) and isinstance(right, str):
        meter.build(text_size(left) + text_size(right))
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        meter.check_value(meter.size_of(left) + meter.size_of(right))
        meter.build(_SLOT * (len(left) + len(right)))


def printf_size(meter: Meter, template: str, args: Any) -> int:
    """About how many bytes `template % args` takes (widths and precisions included)."""
    values = list(args) if isinstance(args, tuple) else [args]
    mapping = args if isinstance(args, Mapping) else {}
    position = 0

    def take() -> Any:
        nonlocal position
        position += 1
        return values[position - 1] if position <= len(values) else None

    total = text_size(template)
    for match in _PRINTF.finditer(template):
        conversion = match["conv"]
        if conversion == "%":
            continue
        width = as_int(take()) if match["width"] == "*" else int(match["width"] or 0)
        precision = as_int(take()) if match["prec"] == "*" else int(match["prec"] or 0)
        value = mapping.get(match["key"]) if match["key"] is not None else take()
        total += max(width, _number_text(meter, value, conversion) + precision)
    return total


def format_size(meter: Meter, value: Any, spec: str) -> int:
    """About how many bytes `format(value, spec)` takes."""
    base = _number_text(meter, value, spec[-1:] or "s")
    match = _SPEC.fullmatch(spec)
    if match is None:  # a type's own mini-language (dates): output grows with the spec
        return base + 16 * len(spec)
    width, precision = int(match["width"] or 0), int(match["prec"] or 0)
    return max(width, base * (2 if match["group"] else 1) + precision)


def check_method(
    meter: Meter, method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Refuse a call of a str, bytes or int method that would build too big a value; returns the
    arguments to call it with (an iterable `join` takes is read once, here)."""
    owner = getattr(method, "__self__", None)
    check = _METHOD_CHECKS.get(getattr(method, "__name__", ""))
    if check is None or not isinstance(owner, str | bytes | int) or isinstance(owner, bool):
        return args
    return check(meter, owner, args, kwargs)


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str, default: int) -> int:
    return as_int(args[0] if args else kwargs.get(name, default), default)


def char_width(*texts: Any) -> int:
    """Bytes a character of the result takes: 1 when all of `texts` are ASCII, else up to 4."""
    return 1 if all(not isinstance(t, str) or t.isascii() for t in texts) else 4


def _padded(meter: Meter, owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    width = _arg(args, kwargs, "width", 0)
    meter.build(max(len(owner), width) * char_width(owner, *args[1:]))
    return args


def _expandtabs(meter: Meter, owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    tabsize = _arg(args, kwargs, "tabsize", 8)
    tabs = owner.count("\t" if isinstance(owner, str) else b"\t")
    meter.build((len(owner) + tabs * max(tabsize, 0)) * char_width(owner))
    return args


def _replace(meter: Meter, owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        meter.build(replace_size(owner, args[0], args[1], count) * char_width(owner, args[1]))
    return args


def replace_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    """Length of `text.replace(old, new, count)`, found without building it."""
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return len(text)
    found = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _join(meter: Meter, owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if not args:
        return args
    items = list(meter.loop(args[0]))
    sizes = sum(text_of(meter, x) for x in items)
    meter.build(sizes + len(owner) * len(items) * char_width(owner))
    return (items, *args[1:])


def _translate(meter: Meter, owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    table = args[0] if args else None
    if isinstance(table, Mapping):
        widest = max((len(v) for v in table.values() if isinstance(v, str | bytes)), default=1)
        meter.build(len(owner) * max(widest, 1) * 4)
    return args


def _to_bytes(meter: Meter, owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    meter.build(_arg(args, kwargs, "length", 1))
    return args


_MethodCheck = Callable[[Meter, Any, tuple[Any, ...], Mapping[str, Any]], tuple[Any, ...]]
_METHOD_CHECKS: dict[str, _MethodCheck] = {
    "ljust": _padded,
    "rjust": _padded,
    "center": _padded,
    "zfill": _padded,
    "expandtabs": _expandtabs,
    "replace": _replace,
    "join": _join,
    "translate": _translate,
    "to_bytes": _to_bytes,
}
