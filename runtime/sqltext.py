"""The friendly early check of a db node's query at validation time, before its source's kind
(and so its SQL dialect) is known.

The text is read twice, as PostgreSQL reads it (dollar quotes, nested comments, E'' strings)
and as MySQL does (backslash escapes, `#` comments, backticks); a problem is reported only when
both readings find one, so no valid query of either dialect is refused here. The adapters'
checks with the real grammars (runtime/databases/sqlcheck.py) are the ones that refuse.
"""

from __future__ import annotations

import re

_READ_STATEMENT = re.compile(r"^\s*\(*\s*(select|with|values|table)\b", re.IGNORECASE)
_PG_DOLLAR = re.compile(r"\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]")


def single_select_problem(query: str) -> str | None:
    """Why `query` is not one SELECT in either dialect (as a phrase), or None."""
    problems = [_problem(_bare(query, postgres=True)), _problem(_bare(query, postgres=False))]
    return None if None in problems else problems[0]


def _problem(bare: str | None) -> str | None:
    if bare is None:
        return "has a quote or comment that is never closed"
    bare = bare.strip().rstrip(";").strip()
    if not bare:
        return "is empty; write one SELECT statement"
    if ";" in bare:
        return "holds more than one statement; write exactly one SELECT"
    if not _READ_STATEMENT.match(bare):
        return "is not a SELECT; the db node only reads"
    return None


def _bare(sql: str, *, postgres: bool) -> str | None:
    """The text with its strings, quoted names and comments blanked; None if one is open."""
    out, i = [], 0
    while i < len(sql):
        end = _literal_end(sql, i, postgres)
        if end is None:
            out.append(sql[i])
            i += 1
        elif end < 0:
            return None
        else:
            out.append(" ")
            i = end
    return "".join(out)


def _literal_end(sql: str, i: int, postgres: bool) -> int | None:
    """Where the string, quoted name or comment starting at `i` ends (-1: never); None when
    none starts there."""
    char, rest = sql[i], sql[i : i + 2]
    if rest == "--" or (char == "#" and not postgres):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end
    if rest == "/*":
        return _comment_end(sql, i, nested=postgres)
    if char in "'\"`" and (char != "`" or not postgres):
        escapes = (not postgres and char != "`") or (postgres and _e_string(sql, i))
        return _quote_end(sql, i, char, escapes)
    if char == "$" and postgres and (i == 0 or not _IDENT_CHAR.match(sql[i - 1])):
        tag = _PG_DOLLAR.match(sql, i)
        if tag:
            end = sql.find(tag.group(), tag.end())
            return -1 if end < 0 else end + len(tag.group())
    return None


def _comment_end(sql: str, i: int, *, nested: bool) -> int:
    depth, j = 0, i
    while j < len(sql) - 1:
        pair = sql[j : j + 2]
        if pair == "/*" and (nested or depth == 0):
            depth, j = depth + 1, j + 2
        elif pair == "*/":
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return -1


def _quote_end(sql: str, i: int, quote: str, escapes: bool) -> int:
    j = i + 1
    while j < len(sql):
        if (escapes and sql[j] == "\\") or sql.startswith(quote * 2, j):
            j += 2
        elif sql[j] == quote:
            return j + 1
        else:
            j += 1
    return -1


def _e_string(sql: str, i: int) -> bool:
    """PostgreSQL's E'…' strings take backslash escapes; standard ones do not."""
    return (
        sql[i] == "'"
        and i > 0
        and sql[i - 1] in "eE"
        and (i == 1 or not _IDENT_CHAR.match(sql[i - 2]))
    )
