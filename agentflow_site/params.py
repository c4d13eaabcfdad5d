"""Numbers in query parameters and headers: ASCII digits within bounds, or a 400 naming them.

`str.isdigit()` is true for `²` and `٣`, and `int()` of 5,000 digits raises: both were 500s.
"""

from collections.abc import Mapping

from rest_framework import exceptions


def whole_number(raw: str, *, field: str, low: int, high: int) -> int:
    """`raw` as an int in [low, high].

    Raises:
        ValidationError: it is not ASCII digits, or it is out of range; naming `field`.
    """
    digits = raw.strip()
    # Bounded before int(): Python refuses to convert more than 4,300 digits.
    if digits.isascii() and digits.isdigit() and len(digits.lstrip("0")) <= len(str(high)):
        value = int(digits)
        if low <= value <= high:
            return value
    raise exceptions.ValidationError({field: [f"A whole number from {low} to {high}."]})


def query_number(params: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    """The query parameter `name` as a whole number in [low, high]; `default` when absent."""
    raw = params.get(name)
    return default if raw is None else whole_number(raw, field=name, low=low, high=high)
