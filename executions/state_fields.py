"""Form fields for a workflow's initial state, from its start (input) node: one per key it
requires or its JSON Schema names, typed after the schema (text, number, yes/no, a choice,
or JSON for objects and arrays)."""

from typing import Any

from django import forms

from runtime.node_metadata import InputMetadata

PREFIX = "state__"
LONG_TEXT = 200
"""Strings allowed longer than this (or unbounded) get a text area."""

JSON_WIDGET = forms.Textarea(attrs={"rows": 4, "cols": 80, "spellcheck": "false"})


def _input_meta(spec: dict[str, Any]) -> InputMetadata | None:
    nodes = {n.get("id"): n for n in spec.get("nodes", []) if isinstance(n, dict)}
    start = nodes.get(spec.get("start_node"), {})
    if start.get("type") != "input":
        return None
    try:
        return InputMetadata.model_validate(start.get("metadata") or {})
    except ValueError:  # the stored spec validated; an older one may not have
        return None


def _text(schema: dict[str, Any], required: bool) -> forms.Field:
    longest = schema.get("maxLength")
    short = isinstance(longest, int) and longest <= LONG_TEXT
    widget = forms.TextInput(attrs={"size": 60}) if short else forms.Textarea(attrs={"rows": 3})
    return forms.CharField(required=required, max_length=longest if short else None, widget=widget)


def _field(schema: dict[str, Any], required: bool) -> forms.Field:
    kind = schema.get("type", "string")
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        return forms.ChoiceField(choices=[("", "—"), *((v, v) for v in enum)], required=required)
    if kind == "integer":
        return forms.IntegerField(required=required)
    if kind == "number":
        return forms.FloatField(required=required)
    if kind == "boolean":
        return forms.NullBooleanField(required=False, widget=forms.NullBooleanSelect)
    if kind == "string":
        return _text(schema, required)
    return forms.JSONField(required=required, widget=JSON_WIDGET)


def state_fields(spec: dict[str, Any]) -> dict[str, forms.Field]:
    """Fields named `state__<key>`, in the order the input node names the keys."""
    meta = _input_meta(spec)
    if meta is None:
        return {}
    schema: dict[str, Any] = dict(meta.state_schema or {})
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    listed = schema.get("required")
    wanted = {*meta.required, *(listed if isinstance(listed, list) else [])}
    fields: dict[str, forms.Field] = {}
    for key in dict.fromkeys([*meta.required, *properties]):
        prop = properties.get(key)
        prop = prop if isinstance(prop, dict) else {}
        field = _field(prop, required=key in wanted)
        field.label, field.help_text = key, str(prop.get("description", ""))
        fields[PREFIX + key] = field
    return fields


def state_from(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The keys the fields were given a value for (an empty optional one is left out)."""
    return {
        name.removeprefix(PREFIX): value
        for name, value in cleaned.items()
        if name.startswith(PREFIX) and value not in (None, "")
    }
