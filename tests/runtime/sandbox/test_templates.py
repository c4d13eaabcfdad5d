"""The template sandbox: what is refused before a run, and rendering the state."""

from __future__ import annotations

import pytest

from runtime.errors import TemplateRenderError
from runtime.sandbox.templates import render_template, template_problem


@pytest.mark.parametrize(
    "source",
    [
        "Answer: {{ user_input }}",
        "{{ db_result.rows[0].name }}",
        "{% for r in db_result.rows %}{{ r.name }}\n{% endfor %}",
        "{{ text_result or user_input }}",
        "{{ user_input | upper }} {{ metadata['tier'] }}",
        'JSON example: {"a": 1}',
        "no template at all",
    ],
)
def test_it_accepts_templates_that_read_the_state(source: str) -> None:
    assert template_problem(source) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ user_input.__class__ }}", "'__class__'"),
        ("{{ x._private }}", "'_private'"),
        ("{{ x['__globals__'] }}", "'__globals__'"),
        ("{{ x | attr('__class__') }}", "'__class__'"),
        ("{{ user_input }", "does not parse"),
        ("{% for x in y %}", "does not parse"),
        ("{{{ x }}}", "does not parse"),
        ("{{ x | no_such_filter }}", "'no_such_filter'"),
        ("{% include 'other.html' %}", "includes or imports"),
        ("{{ x[01] }}", "does not parse"),
        ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "nested too deeply"),
    ],
)
def test_it_refuses_templates_the_sandbox_would_not_run(source: str, expected: str) -> None:
    problem = template_problem(source)
    assert problem is not None and expected in problem


def test_it_renders_against_the_state() -> None:
    state = {"user_input": "hi", "db_result": {"rows": [{"name": "Ann"}]}}
    assert render_template("{{ user_input }} {{ db_result.rows[0].name }}", state) == "hi Ann"


def test_a_missing_key_renders_empty() -> None:
    assert render_template("[{{ nothing.here }}]", {}) == "[]"


def test_it_refuses_output_over_the_bound() -> None:
    with pytest.raises(TemplateRenderError, match="more than 100 characters"):
        render_template("{% for i in range(1000) %}x{% endfor %}", {}, max_chars=100)


def test_the_sandbox_blocks_private_attributes_at_render_time_too() -> None:
    with pytest.raises(TemplateRenderError):
        render_template("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


def test_ordinary_loops_and_arithmetic_still_work() -> None:
    out = render_template("{% for i in range(3) %}{{ i * 2 }}{% endfor %}{{ 'ab' * 2 }}", {})
    assert out == "024abab"
