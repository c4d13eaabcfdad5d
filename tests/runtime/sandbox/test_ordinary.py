"""Ordinary templates and rules still work under the caps, and say what they said before."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cel
import pytest
from jinja2 import ChainableUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runtime.sandbox.expressions import evaluate_rule, expression_problem
from runtime.sandbox.limits import SandboxLimits, configure
from runtime.sandbox.templates import render_template

PLAIN = ImmutableSandboxedEnvironment(autoescape=False, undefined=ChainableUndefined)
STATE: dict[str, Any] = {
    "user_input": "Where is my order? It was due on Monday.",
    "metadata": {"tier": "pro", "tags": ["a", "b"], "customer_email": "ann@example.com"},
    "db_result": {"rows": [{"name": f"item {i}", "price": 9.5 + i, "stock": i} for i in range(5)]},
    "count": 3,
}

TEMPLATES = [
    "Answer: {{ user_input }}",
    "{{ metadata.customer_email }} {{ missing.key }}",
    "{% for r in db_result.rows %}{{ loop.index }}. {{ r.name }}: {{ r.price }}\n{% endfor %}",
    "{% for r in db_result.rows if r.stock > 2 %}{{ r.name }}{% else %}none{% endfor %}",
    "{% for k, v in metadata|dictsort %}{{ k }}={{ v }};{% endfor %}",
    "{{ db_result.rows|map(attribute='name')|join(', ') }}",
    "{{ db_result.rows|sum(attribute='price') }} {{ db_result.rows|max(attribute='stock') }}",
    "{{ db_result.rows|selectattr('stock', 'gt', 2)|map(attribute='name')|list }}",
    "{{ db_result.rows|groupby('stock')|length }} {{ db_result.rows|batch(2)|list|length }}",
    "{{ db_result.rows|slice(2)|list|length }} {{ [3, 1, 2]|sort|join }}",
    "{{ user_input|upper }} {{ user_input|title }} {{ user_input|wordcount }}",
    "{{ user_input|truncate(20) }}|{{ user_input|center(50) }}|{{ user_input|wordwrap(10) }}",
    "{{ user_input|replace('order', 'parcel') }} {{ user_input|indent(2, first=True) }}",
    "{{ metadata|tojson }} {{ metadata|tojson(2) }} {{ metadata|pprint }}",
    "{{ '<b>'|e }} {{ '<b>'|forceescape }} {{ 'a b'|urlencode }} {{ '<p>x</p>'|striptags }}",
    "{{ 'see www.example.com'|urlize }}",
    "{{ '%s has %d items' % (user_input[:5], count) }} {{ '%05.1f'|format(3.14159) }}",
    "{{ '{} and {:>6}'.format('a', 'b') }} {{ '{x}'.format_map({'x': 1}) }}",
    "{{ 'a,b,c'.split(',')|join('-') }} {{ 'x'.center(5, '*') }} {{ '7'.zfill(3) }}",
    "{{ ', '.join(['a', 'b']) }} {{ 'a-b'.replace('-', '+') }} {{ 'a\tb'.expandtabs(4) }}",
    "{{ user_input ~ ' / ' ~ count }} {{ [1, 2] + [3] }} {{ 'ab' * 3 }} {{ 2 ** 10 }}",
    "{{ {'a': [1, (2, 3)]} }} {{ (1, 2) }} {{ count * 7 // 2 }} {{ 10 % 3 }}",
    "{% set ns = namespace(total=0) %}{% for r in db_result.rows %}"
    "{% set ns.total = ns.total + r.stock %}{% endfor %}{{ ns.total }}",
    "{% macro item(name) %}<{{ name }}>{% endmacro %}{{ item('a') }}{{ item('b') }}",
    "{% set block %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %}[{{ block }}]",
    "{% filter upper %}shout {{ user_input }}{% endfilter %}",
    "{% for i in range(3) %}{% for j in range(2) %}{{ i }}{{ j }} {% endfor %}{% endfor %}",
    "{% for x in [[1, [2]], [3]] recursive %}{{ x if x is number else loop(x) }}{% endfor %}",
    "{% if count is divisibleby 3 and 'pro' in metadata.tier %}yes{% endif %}",
    "{{ range(5)|list }} {{ dict(a=1) }} {{ lipsum(1, false, 5, 6)|wordcount > 0 }}",
    "{% autoescape true %}{{ '<x>' }}{{ '<y>'|safe }}{% endautoescape %}",
    "{% with a = 1 %}{{ a }}{% endwith %}{{ cycler('x', 'y').next() }}",
]


@pytest.mark.parametrize("source", TEMPLATES)
def test_an_ordinary_template_renders_as_plain_jinja_would(source: str) -> None:
    expected = PLAIN.from_string(source).render(STATE)
    if "lipsum" in source:
        expected = "".join(expected)
    assert render_template(source, STATE) == expected


RULES = [
    ("metadata.tier == 'pro' && size(user_input) > 20", True),
    ("user_input.contains('refund')", False),
    ("'b' in metadata.tags", True),
    ("db_result.rows.exists(r, r.price > 12.0)", True),
    ("db_result.rows.all(r, r.stock >= 0)", True),
    ("db_result.rows.filter(r, r.stock > 2).size() == 2", True),
    ("db_result.rows.map(r, r.stock).exists(s, s == 4)", True),
    ("db_result.rows.exists_one(r, r.stock == 0)", True),
    ("db_result.rows.all(a, db_result.rows.exists(b, a.stock + b.stock == 4))", True),
    ("size(user_input + '!') > 10 // a comment", True),
    ("count > 2 ? metadata.tier == 'pro' : false", True),
]


@pytest.mark.parametrize(("rule", "expected"), RULES)
def test_an_ordinary_rule_evaluates_as_the_binding_alone_would(rule: str, expected: bool) -> None:
    assert expression_problem(rule) is None
    assert evaluate_rule(rule, STATE) is expected
    assert cel.compile(rule).execute(STATE) is expected


def test_a_rule_over_a_thousand_rows_is_not_refused() -> None:
    # Its cost estimate is what this is about, not the clock: a busy machine gets time.
    configure(replace(SandboxLimits(), rule_max_seconds=120))
    rows = [{"name": f"r{i}", "price": i} for i in range(1000)]
    assert evaluate_rule("rows.map(r, r.price).exists(p, p > 998)", {"rows": rows})
    assert evaluate_rule("rows.filter(r, r.price % 2 == 0).size() == 500", {"rows": rows})


def test_a_rule_may_not_name_what_the_sandbox_uses() -> None:
    problem = expression_problem("__af_tick()")
    assert problem is not None and "reserved" in problem


def test_a_long_string_in_the_state_does_not_make_a_plain_rule_too_costly() -> None:
    state = {"items": [1, 2, 3], "user_input": "x" * 20_000_000}
    assert evaluate_rule("items.exists(i, i == 2) && size(user_input) > 5", state)
