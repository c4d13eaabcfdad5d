"""One evaluation's meter: the steps it took, the bytes it built, its deadline, and how big a value
is (shared parts counted at every use, so `[a, a]` nested 40 deep is as big as it prints)."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Literal, NoReturn

from jinja2.runtime import Undefined
from jinja2.utils import Namespace

from runtime.errors import RuleLimitExceeded, TemplateLimitExceeded
from runtime.sandbox.limits import SandboxLimits, current_config, current_deadline, setting_name

Kind = Literal["template", "rule"]
_SEQUENCES: tuple[type[Collection[Any]], ...] = (
    list,
    tuple,
    set,
    frozenset,
    deque,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)
_CONTAINERS: tuple[type[Collection[Any]], ...] = (*_SEQUENCES, dict)
_SLOT = 8
"""Bytes a list or dict slot takes (a pointer); also a printed element's separator, roughly."""
_CONTAINER = 56
_OTHER = 64
"""What an object of no known shape is taken to weigh (its repr, or its memory)."""
_MEMO = 192
"""Bytes a remembered size takes (an entry, and the container it keeps alive)."""
_PLAIN = (str, int, float, type(None))
_CHECK_EVERY = 7
"""Steps and the clock are checked every 8 steps (a mask): often enough, and cheap."""


def text_size(text: str) -> int:
    """Bytes `text` takes: one a character when ASCII, else up to four (CPython's widest)."""
    return len(text) if text.isascii() else 4 * len(text)


class Meter:
    """Counts one evaluation's work against the caps, and raises the named error at the first
    one it goes over."""

    __slots__ = (
        "built",
        "clock",
        "deadline",
        "deadline_limit",
        "kind",
        "max_built",
        "max_int_bits",
        "max_steps",
        "max_value",
        "range_left",
        "sizes",
        "steps",
    )

    def __init__(self, kind: Kind, limits: SandboxLimits | None = None) -> None:
        configured, self.clock = current_config()
        limits = limits or configured
        template = kind == "template"
        now = self.clock()
        self.kind = kind
        self.deadline = now + (limits.template_max_seconds if template else limits.rule_max_seconds)
        self.deadline_limit = "template_max_seconds" if template else "rule_max_seconds"
        outer = current_deadline()
        if outer is not None and outer < self.deadline:
            self.deadline, self.deadline_limit = outer, "deadline"
        self.max_steps = limits.template_max_steps if template else limits.rule_max_steps
        self.max_value = limits.template_max_value_bytes
        self.max_built = limits.template_max_built_bytes
        self.max_int_bits = limits.template_max_int_bits
        self.range_left = limits.template_max_range
        self.steps = self.built = 0
        self.sizes: dict[int, tuple[object, int]] = {}
        if now > self.deadline:
            self.check_time()

    def exceeded(self, limit: str, what: str) -> NoReturn:
        """Raise the named error: `what` the evaluation would do, and the setting that allows it."""
        error = TemplateLimitExceeded if self.kind == "template" else RuleLimitExceeded
        where = (
            "the node's or the run's timeout_seconds ran out"
            if limit == "deadline"
            else f"setting {setting_name(limit)}"
        )
        raise error(f"The {self.kind} {what} ({where}).", limit=limit)

    def check_time(self) -> None:
        if self.clock() > self.deadline:
            if self.deadline_limit == "deadline":
                self.exceeded("deadline", "was stopped at its deadline")
            self.exceeded(self.deadline_limit, "ran past its time limit")

    def step(self, count: int = 1) -> None:
        """Count `count` steps (loop iterations, calls, or work that costs as much)."""
        before = self.steps
        self.steps = before + count
        if (before ^ self.steps) > _CHECK_EVERY:  # crossed a multiple of 8
            self.checkpoint()

    def checkpoint(self) -> None:
        """Refuse to go on past the step budget or the deadline."""
        if self.steps > self.max_steps:
            self.exceeded(
                f"{self.kind}_max_steps", f"went over its budget of {self.max_steps:,} steps"
            )
        self.check_time()

    def loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Iterate `iterable`, counting a step an item (in eights: a local count is cheaper)."""
        count = 0
        for item in iterable:
            count += 1
            if not count & _CHECK_EVERY:
                self.steps += _CHECK_EVERY + 1
                self.checkpoint()
            yield item
        self.steps += count & _CHECK_EVERY

    def take_range(self, items: int) -> None:
        if items > self.range_left:
            self.exceeded(
                "template_max_range", "would produce too many items with range() together"
            )
        self.range_left -= items

    def check_value(self, size: int) -> None:
        """Refuse a value of `size` bytes (shared parts counted at every use) over the cap."""
        if size > self.max_value:
            self.exceeded(
                "template_max_value_bytes",
                f"would build a value of about {size:,} bytes, over {self.max_value:,}",
            )

    def build(self, size: int) -> None:
        """Count `size` new bytes against one value's cap and the evaluation's."""
        self.check_value(size)
        self.built += size
        if self.built > self.max_built:
            self.exceeded(
                "template_max_built_bytes", f"would build more than {self.max_built:,} bytes in all"
            )
        if size > 65536:
            self.check_time()

    def int_bits(self, bits: float) -> None:
        if bits > self.max_int_bits:
            self.exceeded(
                "template_max_int_bits",
                f"would build a number of about {int(bits):,} bits, over {self.max_int_bits:,}",
            )

    def account(self, result: Any, source: Any = None) -> Any:
        """Count a new value an operation returned (unless it is `source`, returned unchanged)."""
        if result is source:
            return result
        kind = type(result)
        if kind is str or isinstance(result, str):
            self.build(text_size(result))
        elif kind is int:
            self.int_bits(result.bit_length())
        elif isinstance(result, _CONTAINERS):
            self.size_of(result)
            self.build(_CONTAINER + _SLOT * len(result))
        return result

    def size_of(self, value: Any) -> int:
        """About how many bytes `value` takes printed, or in memory if more, shared parts
        counted at every use; raises as soon as that passes one value's cap."""
        if isinstance(value, str):
            return text_size(value)
        if isinstance(value, int):
            return value.bit_length() // 3 + 2
        if value is None or isinstance(value, float | Undefined):
            return 8
        known = self.sizes.get(id(value))
        if known is not None:
            return known[1]
        size, nested = self._measure(value)
        if nested:  # remembered so a shared part is measured once: measuring stays linear
            self.sizes[id(value)] = (value, size)  # kept alive, so the id is not reused
            self.build(_MEMO)
        return size

    def _measure(self, value: Any) -> tuple[int, bool]:
        if isinstance(value, Namespace):  # mutable: measured afresh every time
            attrs = value._Namespace__attrs
            return self._add_up([x for pair in attrs.items() for x in pair])[0], False
        if isinstance(value, Mapping):
            return self._add_up([x for pair in value.items() for x in pair])
        if isinstance(value, _SEQUENCES):
            return self._add_up(value)
        if isinstance(value, range):
            return _CONTAINER + _SLOT * len(value), False
        return _OTHER, False

    def _add_up(self, items: Collection[Any]) -> tuple[int, bool]:
        """The size of a container of `items`, and whether any of them is not a plain value."""
        self.step(len(items))  # measuring costs about as much as a loop over the items
        total, nested = _CONTAINER, False
        for item in items:
            if not isinstance(item, _PLAIN):
                nested = True
            total += _SLOT + self.size_of(item)
            if total > self.max_value:
                self.check_value(total)
        return total, nested


_current: ContextVar[Meter | None] = ContextVar("sandbox_meter", default=None)


def current_meter() -> Meter:
    """The meter of the evaluation under way; outside one (Jinja folding a constant while it
    compiles), a fresh one, so every operation stays bounded."""
    return _current.get() or Meter("template")


def start(meter: Meter) -> Any:
    """Make `meter` the current one; pass the result to `stop`."""
    return _current.set(meter)


def stop(token: Any) -> None:
    _current.reset(token)
