"""Query filters shared by the list routes."""

import re
from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

# `?created_after=2026-01-01T00:00:00+02:00` sent unencoded: the query string decodes + as a
# space. A space before the offset can mean nothing else.
_PLUS_AS_SPACE = re.compile(r"(.*T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)")


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date and time, in UTC whatever offset it was given in: PostgreSQL refuses an
    offset past ±15:59 (`+17:00`), which Python accepts up to ±23:59."""

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date and time, e.g. 2026-01-01T00:00:00Z.",
        "out_of_range": "This date and time is out of range once converted to UTC.",
    }

    def to_python(self, value: Any) -> datetime | None:
        if isinstance(value, str) and (spaced := _PLUS_AS_SPACE.fullmatch(value.strip())):
            value = f"{spaced[1]}+{spaced[2]}"
        result = super().to_python(value)
        if result is None:
            return None
        try:
            return result.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(
                self.error_messages["out_of_range"], code="out_of_range"
            ) from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """`IsoDateTimeFilter`, normalised to UTC (see `UtcDateTimeField`)."""

    field_class = UtcDateTimeField
