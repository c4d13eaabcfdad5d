"""Text as it goes into a picture: clipped, measured, and escaped (specs are hostile input)."""

from __future__ import annotations

import html
import re
import unicodedata

# Characters XML 1.0 cannot hold even escaped (controls, lone surrogates, U+FFFE/U+FFFF): one
# of them in an SVG makes the whole document unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_BREAKS = re.compile(r"[\r\n\t\u2028\u2029\x85]+")


def clean(text: str) -> str:
    """`text` on one line, with characters no XML document holds replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", _BREAKS.sub(" ", text))


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, the last an ellipsis when some were cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def xml_escape(text: str) -> str:
    """Safe as XML text and as a quoted attribute value."""
    return html.escape(clean(text), quote=True)


def width(text: str, size: float) -> float:
    """The width of `text` in a monospace font of `size` px (wide East Asian characters count
    twice, combining marks not at all)."""
    units = 0.0
    for char in text:
        if unicodedata.combining(char):
            continue
        units += 1.2 if unicodedata.east_asian_width(char) in "WF" else 0.62
    return units * size
