"""Turn the caller's input into a JSON object, refusing what is too big or too deep early."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.errors import ErrorType, SpecError
from runtime.validation_report import Report


@dataclass(frozen=True)
class Loaded:
    obj: dict[str, Any] | None
    text: str | None = None


def load(data: Any, max_bytes: int, max_depth: int, report: Report) -> Loaded:
    """Parse and bound `data`; on failure report why and return `Loaded(None)`."""
    if isinstance(data, bytes | bytearray | memoryview):
        return _from_bytes(bytes(data), max_bytes, max_depth, report)
    if isinstance(data, str):
        return _from_text(data, max_bytes, max_depth, report)
    if isinstance(data, Mapping):
        return _from_mapping(data, max_bytes, max_depth, report)
    return _not_object(data, report, None)


def _too_large(report: Report, message: str, path: str = "") -> Loaded:
    report.errors.append(SpecError(ErrorType.SPEC_TOO_LARGE, message, path))
    return Loaded(None)


def _size_message(size: int, max_bytes: int) -> str:
    return (
        f"The spec is {size:,} bytes; the limit is {max_bytes:,}. Split the workflow, or move "
        "long prompts and schemas out of it."
    )


def _from_bytes(raw: bytes, max_bytes: int, max_depth: int, report: Report) -> Loaded:
    if len(raw) > max_bytes:
        return _too_large(report, _size_message(len(raw), max_bytes))
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"The spec is not UTF-8 text (bad byte at offset {exc.start}); send UTF-8 JSON."
        report.errors.append(SpecError(ErrorType.SCHEMA, msg))
        return Loaded(None)
    return _from_text(decoded, max_bytes, max_depth, report, sized=True)


def _from_text(
    text: str, max_bytes: int, max_depth: int, report: Report, sized: bool = False
) -> Loaded:
    if not sized and len(text) * 4 > max_bytes:
        size = len(text.encode("utf-8", "surrogatepass")) if len(text) <= max_bytes else len(text)
        if size > max_bytes:
            return _too_large(report, _size_message(size, max_bytes))
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        msg = f"The spec is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        report.errors.append(SpecError(ErrorType.SCHEMA, msg, "", None, exc.lineno, exc.colno))
        return Loaded(None)
    except RecursionError:
        return _too_large(
            report, f"The spec nests objects or arrays more than {max_depth} levels deep."
        )
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        line, column = _position(text, _UNPARSABLE_NUMBER)
        msg = f"The spec is not valid JSON: {exc} (line {line}, column {column})."
        report.errors.append(SpecError(ErrorType.SCHEMA, msg, "", None, line, column))
        return Loaded(None)
    return _checked(obj, max_depth, report, text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Outside strings: the tokens json.loads accepts but a spec may not hold.
_UNPARSABLE_NUMBER = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?Infinity|NaN|-?[0-9]{4000,})')


def _position(text: str, pattern: re.Pattern[str]) -> tuple[int, int]:
    """Line and column of the first match of `pattern`'s group 1 (1, 1 when there is none)."""
    for match in pattern.finditer(text):
        if match.group(1) is not None:
            start = match.start(1)
            return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1
    return 1, 1


def _from_mapping(
    data: Mapping[Any, Any], max_bytes: int, max_depth: int, report: Report
) -> Loaded:
    obj = dict(data)
    deep = _too_deep(obj, max_depth)
    if deep is not None:
        return _depth_error(report, max_depth, deep)
    try:
        size = len(
            json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
                "utf-8", "surrogatepass"
            )
        )
    except (TypeError, ValueError) as exc:
        report.errors.append(
            SpecError(ErrorType.SCHEMA, f"The spec holds a value that is not JSON: {exc}.")
        )
        return Loaded(None)
    if size > max_bytes:
        return _too_large(report, _size_message(size, max_bytes))
    return _checked(obj, max_depth, report, None, depth_checked=True)


def _checked(
    obj: Any, max_depth: int, report: Report, text: str | None, depth_checked: bool = False
) -> Loaded:
    if not isinstance(obj, dict):
        return _not_object(obj, report, text)
    deep = None if depth_checked else _too_deep(obj, max_depth)
    if deep is not None:
        return _depth_error(report, max_depth, deep)
    report.obj = obj
    return Loaded(obj, text)


def _not_object(obj: Any, report: Report, text: str | None) -> Loaded:
    kind = {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(obj), "a number" if isinstance(obj, int | float) else type(obj).__name__
    )
    msg = f'The spec must be a JSON object ({{"name": …, "nodes": […], …}}), not {kind}.'
    line = 1 if text is not None else None
    report.errors.append(SpecError(ErrorType.SCHEMA, msg, "", None, line, line))
    return Loaded(None)


def _depth_error(report: Report, max_depth: int, path: str) -> Loaded:
    msg = f"The spec nests objects or arrays more than {max_depth} levels deep (at {path or '/'})."
    return _too_large(report, msg, path)


def _too_deep(obj: Any, max_depth: int) -> str | None:
    """The pointer of the first container deeper than `max_depth`, found without recursion."""
    stack: list[tuple[Any, int, str]] = [(obj, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if depth > max_depth:
            return path
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, f"{path}/{_escape(key)}"))
    return None


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")
