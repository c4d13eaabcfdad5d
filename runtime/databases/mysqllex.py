"""MySQL's own lexical rules, so that the early check sees the text as the server will.

sqlglot reads `/*! … */` and `/*M! … */` as comments, but MySQL and MariaDB run what is inside
them, and it compares a backtick-quoted name as a different thing than the bare one, but the
server calls `` `load_file`(…) `` all the same. This lexer follows the server: strings with
backslash escapes (the session clears NO_BACKSLASH_ESCAPES), `` `quoted` `` names, `#`, `-- `
and `/* */` comments. It refuses what it cannot read the way every server would:
- a comment the server executes or reads as a hint (`/*!`, `/*M!`, `/*+`);
- a backslash inside "double quotes" (a string, or a name under ANSI_QUOTES: their ends differ);
- a `%(name)s` placeholder inside a string, a quoted name or a comment when values are bound
  (PyMySQL formats them into the text wherever they are, even there);
- `@variables`, which change the session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.databases.base import DatabaseError, ReadOnlyViolationError

PLACEHOLDER = re.compile(r"%\([^)]*\)[sbt]|%[sbt]|%%")
_WORD = re.compile(r"[0-9A-Za-z_$\u0080-\uffff]+")
_SPACE = " \t\n\r\f\v"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    """`word`, `quoted` (a `name`), `dquoted` ("text", or a name under ANSI_QUOTES), `string`
    ('text'), `placeholder` or `punct`."""
    text: str
    """The word, the quoted name without its backticks, or the character."""
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Lexed:
    tokens: list[Token]
    code: str
    """The text with every comment a space and every placeholder `?` (for sqlglot)."""


def lex(sql: str, *, has_params: bool) -> Lexed:
    """Split `sql` into MySQL tokens.

    Raises:
        ReadOnlyViolationError: an executable or hint comment, or an @variable.
        DatabaseError: an unterminated string or comment, a backslash in double quotes, or a
            placeholder where PyMySQL would put a value inside a string or comment.
    """
    return _Lexer(sql, has_params).run()


class _Lexer:
    def __init__(self, sql: str, has_params: bool) -> None:
        self.sql, self.has_params = sql, has_params
        self.tokens: list[Token] = []
        self.pieces: list[str] = []
        self.i = 0

    def run(self) -> Lexed:
        sql, size = self.sql, len(self.sql)
        if "\x00" in sql:  # some server code paths read it as the end of the text
            raise DatabaseError("The query holds a NUL character; remove it.")
        while self.i < size:
            start, char = self.i, sql[self.i]
            if char in _SPACE:
                self.i += 1
                self.pieces.append(char)
            elif char == "#" or (sql.startswith("--", start) and _dash_comment(sql, start)):
                self._line_comment()
            elif sql.startswith("/*", start):
                self._block_comment()
            elif char in "'\"`":
                self._quoted(char)
            elif char == "%" and self.has_params and (found := PLACEHOLDER.match(sql, start)):
                self._placeholder(found)
            elif char == "@":
                raise ReadOnlyViolationError(
                    "The db node runs one plain SELECT: @variables change the session; "
                    "pass values through params instead."
                )
            elif found := _WORD.match(sql, start):
                self._add("word", found.group(), start, found.end())
            else:
                self._add("punct", char, start, start + 1)
        return Lexed(self.tokens, "".join(self.pieces))

    def _add(self, kind: str, text: str, start: int, end: int, code: str | None = None) -> None:
        self.tokens.append(Token(kind, text, start, end))
        self.pieces.append(self.sql[start:end] if code is None else code)
        self.i = end

    def _line_comment(self) -> None:
        end = self.sql.find("\n", self.i)
        end = len(self.sql) if end < 0 else end
        self._no_placeholder(self.sql[self.i : end], "a comment")
        self.pieces.append(" ")
        self.i = end

    def _block_comment(self) -> None:
        start = self.i
        head = self.sql[start + 2 : start + 4]
        if head[:1] in ("!", "+") or head.upper() == "M!":
            marker = "/*" + (head if head.upper() == "M!" else head[:1])
            raise ReadOnlyViolationError(
                f"The db node only runs the SELECT it can read: the server runs what a "
                f"{marker} … */ comment holds (or reads it as a hint). Remove the comment."
            )
        end = self.sql.find("*/", start + 2)
        if end < 0:
            raise DatabaseError("The query has a /* comment that never ends.")
        self._no_placeholder(self.sql[start : end + 2], "a comment")
        self.pieces.append(" ")
        self.i = end + 2

    def _quoted(self, quote: str) -> None:
        sql, start, i = self.sql, self.i, self.i + 1
        while i < len(sql):
            char = sql[i]
            if char == "\\" and quote != "`":
                if quote == '"':
                    raise DatabaseError(
                        'The query has a backslash inside "double quotes", which servers read '
                        "in two ways; use 'single quotes' for text."
                    )
                i += 2
            elif char == quote and sql.startswith(quote * 2, i):
                i += 2
            elif char == quote:
                break
            else:
                i += 1
        else:
            raise DatabaseError(f"The query has a {quote} quote that is never closed.")
        inner = sql[start + 1 : i]
        self._no_placeholder(inner, "a quoted name" if quote == "`" else "a string")
        kind = {"`": "quoted", '"': "dquoted"}.get(quote, "string")
        self._add(kind, inner.replace(quote * 2, quote), start, i + 1)

    def _placeholder(self, found: re.Match[str]) -> None:
        if found.group() == "%%":
            self._add("punct", "%", found.start(), found.end(), "%")
        else:
            self._add("placeholder", found.group(), found.start(), found.end(), "?")

    def _no_placeholder(self, text: str, where: str) -> None:
        if self.has_params and any(m.group() != "%%" for m in PLACEHOLDER.finditer(text)):
            raise DatabaseError(
                f"The query has a placeholder inside {where}, where the driver would put the "
                "value into the text; put the placeholder where a value goes (write a literal "
                "% as %%)."
            )


def _dash_comment(sql: str, start: int) -> bool:
    """`--` starts a comment only before a space or a control character (else it is two minus
    signs: `1--1` is 2)."""
    after = start + 2
    return after >= len(sql) or sql[after] in _SPACE or ord(sql[after]) < 32
