"""Map JSON Pointers to the line and column of their value in the original JSON text.

One tokenizer pass over text that `json.loads` already accepted (so no error handling for bad JSON
is needed), iterative (no recursion on deep input), stopping once every wanted pointer is found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r'[{}\[\],:]|"[^"\\]*(?:\\.[^"\\]*)*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
    r"|true|false|null"
)


def escape(segment: str | int) -> str:
    """Escape one JSON Pointer segment (RFC 6901)."""
    return str(segment).replace("~", "~0").replace("/", "~1")


def pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + escape(part) for part in parts)


def parent(ptr: str) -> str:
    return ptr[: ptr.rfind("/")] if ptr else ""


@dataclass
class _Frame:
    path: str
    is_object: bool
    key: str | int | None = None
    expect_key: bool = False


@dataclass
class _Scanner:
    wanted: set[str]
    found: dict[str, int] = field(default_factory=dict)
    stack: list[_Frame] = field(default_factory=list)

    def value_path(self) -> str:
        if not self.stack:
            return ""
        top = self.stack[-1]
        return f"{top.path}/{escape(top.key if top.key is not None else '')}"

    def on_value(self, offset: int) -> str:
        path = self.value_path()
        if path in self.wanted:
            self.found[path] = offset
        return path

    def feed(self, token: str, offset: int) -> None:
        top = self.stack[-1] if self.stack else None
        if token == "{":
            self.stack.append(_Frame(self.on_value(offset), True, None, True))
        elif token == "[":
            self.stack.append(_Frame(self.on_value(offset), False, 0))
        elif token in ("}", "]"):
            self.stack.pop()
        elif token == ",":
            self._next_item(top)
        elif token == ":":
            return
        elif top is not None and top.is_object and top.expect_key:
            top.key = json.loads(token) if "\\" in token else token[1:-1]
            top.expect_key = False
        else:
            self.on_value(offset)

    @staticmethod
    def _next_item(top: _Frame | None) -> None:
        if top is None:
            return
        if top.is_object:
            top.expect_key = True
        else:
            top.key = int(top.key or 0) + 1


def offsets(text: str, pointers: Iterable[str]) -> dict[str, int]:
    """Return the character offset of each pointer's value that exists in `text`."""
    scanner = _Scanner(wanted=set(pointers))
    for match in _TOKEN.finditer(text):
        scanner.feed(match.group(), match.start())
        if len(scanner.found) == len(scanner.wanted):
            break
    return scanner.found


def locate(text: str, pointers: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Return (line, column), both 1-based, for each pointer.

    A pointer to something absent (a missing key) gets the position of its nearest existing
    ancestor: the object where the key should be.
    """
    targets = set(pointers)
    candidates = {prefix for ptr in targets for prefix in _prefixes(ptr)}
    found = offsets(text, candidates)
    nearest = {ptr: _nearest(ptr, found) for ptr in targets}
    positions = _line_columns(text, sorted(set(nearest.values())))
    return {ptr: positions[off] for ptr, off in nearest.items()}


def _prefixes(ptr: str) -> Iterable[str]:
    while True:
        yield ptr
        if not ptr:
            return
        ptr = parent(ptr)


def _nearest(ptr: str, found: dict[str, int]) -> int:
    for prefix in _prefixes(ptr):
        if prefix in found:
            return found[prefix]
    return 0


def _line_columns(text: str, sorted_offsets: list[int]) -> dict[int, tuple[int, int]]:
    result: dict[int, tuple[int, int]] = {}
    line, previous = 1, 0
    for off in sorted_offsets:
        line += text.count("\n", previous, off)
        previous = off
        result[off] = (line, off - (text.rfind("\n", 0, off) + 1) + 1)
    return result
