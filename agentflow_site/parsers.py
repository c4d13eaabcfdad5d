"""One JSON parser for every route: bounded nesting, finite numbers, and only text PostgreSQL
can store.

PostgreSQL refuses `\\u0000` in `jsonb` and `text`, and psycopg cannot encode an unpaired
surrogate (`\\ud800`); `1e400` parses to infinity, which `jsonb` refuses too. JSON allows all
three, so each would pass validation and fail at the database as a 500 after part of a request's
work was done. They are refused here, before any view sees the body, naming where they are.
"""

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions, parsers

MAX_DEPTH = 100
"""Arrays and objects a body may nest (a spec may nest 64: runtime/validation.py)."""

# JSON text can only hold NUL or a surrogate as a \u escape: a raw control character is invalid
# JSON and a raw surrogate is invalid UTF-8. No such escape, no string to check.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Refusal:
    """Why a parsed body cannot be taken, and where: `path` holds the keys and indexes to it."""

    path: tuple[str | int, ...]
    message: str
    kind: str  # "depth", "text" or "number"

    @property
    def field(self) -> str:
        """The path as the problem+json `errors[].field` spells it: `spec.nodes.1.id`."""
        return ".".join(str(part) for part in self.path)

    @property
    def pointer(self) -> str:
        """The path as a JSON Pointer: `/spec/nodes/1/id`."""
        return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in self.path)


class BodyRefused(exceptions.ParseError):
    """A body that is JSON but holds what the API cannot take; `errors` names where."""

    default_detail = "The request body holds a value the API cannot take."
    default_code = "invalid_body"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.field or 'The body'}: {refusal.message}")
        self.refusal = refusal
        self.errors = [{"field": refusal.field, "message": refusal.message}]


def _depth_refusal(path: tuple[str | int, ...] = ()) -> Refusal:
    message = f"Arrays and objects may nest at most {MAX_DEPTH} deep."
    return Refusal(path, message, "depth")


def decode(raw: bytes | str, encoding: str = "utf-8") -> str:
    """The body as text in its declared charset.

    Raises:
        ParseError: it is not text in that charset.
    """
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode(encoding)
    except (ValueError, LookupError) as exc:  # LookupError: a codec that is not a text encoding
        raise exceptions.ParseError(f"The body is not {encoding} text: {exc}") from None


def loads(text: str) -> Any:
    """Parse JSON text, refusing NaN and Infinity, and nesting too deep to parse at all.

    Raises:
        ParseError: the text is not JSON.
        BodyRefused: it nests deeper than a parser can follow.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise BodyRefused(_depth_refusal()) from None
    except ValueError as exc:
        reason = str(exc)
        if "integer string conversion" in reason:
            reason = "a number has more than 4,300 digits"
        raise exceptions.ParseError(f"JSON parse error - {reason}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def refusal_in(value: Any, text: str | None = None) -> Refusal | None:
    """The first value of a parsed body the API cannot take, or None.

    `text`, the JSON it was parsed from, lets a body with no `\\u` escape skip the text check.
    """
    check_text = text is None or _SUSPECT_ESCAPE.search(text) is not None
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict | list):
            if len(path) >= MAX_DEPTH:
                return _depth_refusal(path)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if check_text and isinstance(key, str) and (problem := text_problem(key)):
                    return Refusal((*path, key), f"This key {problem}.", "text")
                stack.append((child, (*path, key)))
        elif isinstance(item, str):
            if check_text and (problem := text_problem(item)):
                return Refusal(path, f"This text {problem}.", "text")
        elif isinstance(item, float) and not math.isfinite(item):
            return Refusal(path, "This number is too large to store.", "number")
    return None


def text_problem(text: str) -> str | None:
    """Why PostgreSQL cannot take `text` ("holds a NUL character …"), or None."""
    if "\x00" in text:
        return "holds a NUL character (\\u0000), which PostgreSQL cannot store"
    if _SURROGATE.search(text):
        return "holds an unpaired surrogate (\\ud800-\\udfff), which is not Unicode text"
    return None


def parse_body(raw: bytes | str, encoding: str = "utf-8") -> Any:
    """Parse a request body and refuse anything in it the API cannot take.

    Raises:
        ParseError: the body is not JSON.
        BodyRefused: it is JSON, but nests too deep or holds text or a number that cannot be
            stored; `errors` names where.
    """
    text = decode(raw, encoding)
    value = loads(text)
    refusal = refusal_in(value, text)
    if refusal is not None:
        raise BodyRefused(refusal)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with `parse_body`'s bounds. A subclass, so DRF still reads the body
    through `request.body` (which refuses one over DATA_UPLOAD_MAX_MEMORY_SIZE unread)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        return parse_body(stream.read(), encoding)
