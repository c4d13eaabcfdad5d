"""What a model's column can hold, for the serializers that fill it: a value out of range passes
a serializer that does not know the column, then fails at the database as a 500."""

from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations


def _field(model: type[models.Model], name: str) -> models.Field:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field), f"{model.__name__}.{name} is not a column"
    return field


def column_max(model: type[models.Model], name: str) -> int:
    """The largest integer the column holds (PostgreSQL's range for its type, on any database)."""
    internal_type = _field(model, name).get_internal_type()
    return BaseDatabaseOperations.integer_field_ranges[internal_type][1]


def column_length(model: type[models.Model], name: str) -> int:
    """The most characters the column holds."""
    length = _field(model, name).max_length
    assert length is not None, f"{model.__name__}.{name} has no max_length"
    return length
