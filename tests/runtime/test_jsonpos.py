"""JSON Pointer → line/column in the original text."""

from __future__ import annotations

import json

from runtime.jsonpos import locate, pointer

TEXT = """{
  "a/b": {"x~y": [10, {"deep": "v"}]},
  "list": [
    1,
    "two"
  ],
  "esc\\"aped": true
}"""


def test_it_finds_values_by_pointer() -> None:
    found = locate(TEXT, ["", "/a~1b", "/a~1b/x~0y/1/deep", "/list/1", '/esc"aped'])
    assert found[""] == (1, 1)
    assert found["/a~1b"] == (2, 10)
    assert found["/a~1b/x~0y/1/deep"] == (2, TEXT.splitlines()[1].index('"v"') + 1)
    assert found["/list/1"] == (5, 5)
    assert found['/esc"aped'] == (7, 16)


def test_a_missing_key_points_at_its_object() -> None:
    assert locate(TEXT, ["/a~1b/nope/deeper"])["/a~1b/nope/deeper"] == (2, 10)


def test_pointer_escapes_segments() -> None:
    assert pointer(["a/b", "x~y", 3]) == "/a~1b/x~0y/3"


def test_it_is_iterative_on_deep_text() -> None:
    deep = "[" * 5000 + "]" * 5000
    path = "/0" * 4999
    assert locate(deep, [path])[path] == (1, 5000)


def test_columns_count_characters_not_bytes() -> None:
    text = json.dumps({"é": "ü", "k": 1}, ensure_ascii=False)
    assert locate(text, ["/k"])["/k"] == (1, text.index("1") + 1)
