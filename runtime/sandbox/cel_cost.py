"""What a CEL rule can cost, read from its text: its comprehensions (`all`, `exists`, `exists_one`,
`map`, `filter`) and how they nest, and its `+` (which can grow lists and strings).

The `cel` binding exposes no syntax tree, so this works on tokens: a comprehension is `.name(`
up to its matching `)`, its body the arguments after the first. `instrument` rewrites a rule so
every comprehension iteration first calls `TICK()` (a Python callback that counts steps and reads
the clock), and wraps a rule whose result may not be a boolean so that only a boolean or a type
name comes back to Python (never a huge list to convert).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RESERVED_PREFIX = "__af_"
TICK = "__af_tick"
_RESULT = "__af_r"
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_ACCUMULATING = frozenset({"map", "filter"})
_COPIES_A_STEP = 10
"""Copying an element costs ~0.1 µs in the binding, an iteration with its callback ~1 µs."""
_TOKEN = re.compile(
    r"""(?P<space>\s+|//[^\n]*)
    |(?P<string>(?:[rR][bB]?|[bB][rR])(?:'''.*?'''|\"\"\".*?\"\"\"|'[^'\n]*'|"[^"\n]*")
      |[bB]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^\\'\n])*'|"(?:\\.|[^\\"\n])*"))
    |(?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[uU]?)
    |(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)
    |(?P<op>==|!=|<=|>=|&&|\|\||.)""",
    re.S | re.X,
)
_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")
_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_KEYWORDS = frozenset({"true", "false", "null", "in"})
_BOOLEAN_OPS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "&&", "||"})


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int
    depth: int
    """Brackets open around it."""


@dataclass(slots=True)
class Comprehension:
    name: str
    open: int
    """Index of its `(` among the tokens."""
    close: int
    args: list[tuple[int, int]]
    """Token index ranges [first, last) of its arguments."""
    builds: bool = False
    """Its result expression names something besides its own variable, or builds a list or map:
    its elements may be as big as anything in the state."""
    inner: list[Comprehension] = field(default_factory=list)
    """Comprehensions in its arguments, outermost first."""


@dataclass(frozen=True, slots=True)
class Shape:
    """The parts of a rule its cost depends on."""

    comprehensions: list[Comprehension]
    """The outermost ones, in order."""
    maps: int
    plus_in_maps: int
    """`+` in a `map`'s result expression: each can double what every element holds."""
    plus_elsewhere: int
    tokens: int
    boolean: bool
    """Its top-level operator always gives a boolean (a comparison, `in`, `&&`, `||`)."""

    @property
    def growth(self) -> int:
        """How many times bigger than its inputs a value the rule builds can be."""
        return (1 + self.plus_elsewhere) << min(self.plus_in_maps, 64)


def tokenize(source: str) -> list[Token]:
    tokens, depth = [], 0
    for match in _TOKEN.finditer(source):
        kind, text = match.lastgroup, match.group()
        if kind == "space":
            continue
        if text in _CLOSE:
            depth -= 1
        tokens.append(Token(text, match.start(), match.end(), depth))
        if text in _OPEN:
            depth += 1
    return tokens


def shape(tokens: list[Token]) -> Shape:
    found = _comprehensions(tokens)
    maps = [c for c in found if c.name == "map"]
    in_maps = {i for c in maps for i in range(*c.args[-1])}
    pluses = [i for i, t in enumerate(tokens) if t.text == "+"]
    top = {t.text for t in tokens if t.depth == 0}
    return Shape(
        comprehensions=_nest(found),
        maps=len(maps),
        plus_in_maps=sum(1 for i in pluses if i in in_maps),
        plus_elsewhere=sum(1 for i in pluses if i not in in_maps),
        tokens=len(tokens),
        boolean=bool(top & _BOOLEAN_OPS) and "?" not in top,
    )


def _comprehensions(tokens: list[Token]) -> list[Comprehension]:
    found = []
    for i in range(len(tokens) - 2):
        if tokens[i].text == "." and tokens[i + 1].text in MACROS and tokens[i + 2].text == "(":
            close = _closing(tokens, i + 2)
            args = _args(tokens, i + 2, close)
            if len(args) >= 2:
                builds = _builds(tokens, args[0], args[-1])
                found.append(Comprehension(tokens[i + 1].text, i + 2, close, args, builds))
    return found


def _builds(tokens: list[Token], variable: tuple[int, int], result: tuple[int, int]) -> bool:
    own = {tokens[i].text for i in range(*variable)}
    for j in range(*result):
        text = tokens[j].text
        if text in ("[", "{"):
            return True
        after_dot = j > 0 and tokens[j - 1].text == "."
        called = j + 1 < len(tokens) and tokens[j + 1].text == "("
        if _NAME.fullmatch(text) and not (after_dot or called or text in own | _KEYWORDS):
            return True
    return False


def _closing(tokens: list[Token], open_index: int) -> int:
    depth = tokens[open_index].depth
    for j in range(open_index + 1, len(tokens)):
        if tokens[j].depth == depth and tokens[j].text in _CLOSE:
            return j
    return len(tokens)


def _args(tokens: list[Token], open_index: int, close: int) -> list[tuple[int, int]]:
    depth, args, start = tokens[open_index].depth + 1, [], open_index + 1
    for j in range(open_index + 1, close):
        if tokens[j].text == "," and tokens[j].depth == depth:
            args.append((start, j))
            start = j + 1
    if start < close:
        args.append((start, close))
    return args


def _nest(found: list[Comprehension]) -> list[Comprehension]:
    outer: list[Comprehension] = []
    stack: list[Comprehension] = []
    for c in sorted(found, key=lambda c: c.open):
        while stack and c.open > stack[-1].close:
            stack.pop()
        (stack[-1].inner if stack else outer).append(c)
        stack.append(c)
    return outer


def cost(comprehensions: list[Comprehension], range_bound: int, element: int, big: int) -> int:
    """At most how many steps `comprehensions` take, each ranging over `range_bound` items: an
    iteration is a step, and `map` and `filter` also copy their result so far at every item
    (the binding builds it as `result + [item]`), a step per `_COPIES_A_STEP` values copied; an
    element holds `element` values, or `big` when the comprehension `builds`."""
    total = 0
    for c in comprehensions:
        total += range_bound * (1 + cost(c.inner, range_bound, element, big))
        if c.name in _ACCUMULATING:
            size = big if c.builds else element
            total += range_bound * range_bound * size // (2 * _COPIES_A_STEP)
    return total


def instrument(source: str, tokens: list[Token], rule: Shape) -> str:
    """`source` with a `TICK()` call in every comprehension's per-item argument, and wrapped to
    give only a boolean or a type name when its result may not be a boolean."""
    edits: list[tuple[int, str]] = []
    stack = list(rule.comprehensions)
    while stack:
        c = stack.pop()
        first, last = c.args[1]
        edits += [(tokens[first].start, f"({TICK}() ? ("), (tokens[last - 1].end, ") : null)")]
        stack += c.inner
    text = source
    for offset, insert in sorted(edits, key=lambda e: e[0], reverse=True):
        text = text[:offset] + insert + text[offset:]
    if rule.boolean:
        return text
    kind = f"type({_RESULT})"
    return f"[{text}\n].map({_RESULT}, {kind} == bool ? {_RESULT} : {kind})[0]"
