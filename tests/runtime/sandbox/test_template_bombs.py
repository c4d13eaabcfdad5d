"""Templates written to run for ever or to eat the server's memory: each is stopped with a named
error, within its deadline plus a second, having allocated less than 50 MB on the way."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.errors import TemplateLimitExceeded, TemplateRenderError
from runtime.sandbox.templates import ENV, render_template
from tests.runtime.sandbox.conftest import DEADLINE, MAX_GROWTH, SLACK, run_bounded

LIMIT, ERROR = "template_limit", "template_error"
DAG = "{% set ns = namespace(a=['x' * 1000]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"  # noqa: E501

BOMBS: dict[str, tuple[str, str]] = {
    # The ones issue 12 reported through the API.
    "power tower": ("{{ (((7**1000)**1000)**10) > 0 }}", LIMIT),
    "power tower, longer": ("{{ (((7**1000)**1000)**20) > 0 }}", LIMIT),
    "nested loops over a list": (
        "{% for a in zeros %}{% for b in zeros %}{% for c in zeros %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        LIMIT,
    ),
    "lipsum": ("{{ lipsum(20000) }}", LIMIT),
    "center filter": ("{{ 'a'|center(100000000) }}", LIMIT),
    "center filter, 2**40": ("{{ 'a'|center(2**40) }}", LIMIT),
    "slice filter": ("{{ [1]|slice(10000000)|list|length }}", LIMIT),
    "batch filter": ("{{ [1]|batch(30000000, 0)|list|length }}", LIMIT),
    "doubling in a namespace": (
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        LIMIT,
    ),
    "format_map on an attribute": ("{{ '{0.__class__}'.format_map({}) }}", ERROR),
    # Operators.
    "power": ("{{ 2 ** 100000000 }}", LIMIT),
    "product of big numbers": ("{{ (7**30000) * (7**30000) }}", LIMIT),
    "string repetition": ("{{ 'x' * 100000000 }}", LIMIT),
    "list repetition": ("{{ [1] * 100000000 }}", LIMIT),
    "printf width": ("{{ '%0100000000d' % 1 }}", LIMIT),
    "printf width from the arguments": ("{{ '%*d' % (100000000, 1) }}", LIMIT),
    "printf precision": ("{{ '%.100000000f' % 1.0 }}", LIMIT),
    "range in range": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        LIMIT,
    ),
    # Methods of strings and numbers.
    "ljust": ("{{ 'a'.ljust(100000000) }}", LIMIT),
    "zfill": ("{{ '1'.zfill(100000000) }}", LIMIT),
    "expandtabs": ("{{ ('\t' * 100).expandtabs(tabsize=10000000) }}", LIMIT),
    "replace with an empty needle": ("{{ big.replace('', 'yyyyyyyyyy')|length }}", LIMIT),
    "join method": ("{{ ','.join([big] * 100)|length }}", LIMIT),
    "translate": ("{{ big.translate({120: 'yyyyyyyyyy'})|length }}", LIMIT),
    "to_bytes": ("{{ (1).to_bytes(100000000, 'big')|length }}", LIMIT),
    "format width": ("{{ '{:>100000000}'.format(1) }}", LIMIT),
    "format width from a field": ("{{ '{0:{1}}'.format(1, 100000000) }}", LIMIT),
    "format_map with a missing key": ("{{ '{a}'.format_map({}) }}", ERROR),
    "fromkeys sharing one big value": ("{{ {}.fromkeys(range(100000), big)|length }}", LIMIT),
    # Filters.
    "indent": ("{{ ('a\n' * 1000)|indent(100000) }}", LIMIT),
    "wordwrap cutting one long word": ("{{ big|wordwrap(1)|length }}", LIMIT),
    "tojson indent": ("{{ zeros|tojson(100000000) }}", LIMIT),
    "replace filter": ("{{ big|replace('', 'bbbbbbbbbb')|length }}", LIMIT),
    "join filter": ("{{ ([big] * 100)|join(',')|length }}", LIMIT),
    "urlize with a long target": ("{{ ('a.b ' * 10000)|urlize(target='x' * 100000) }}", LIMIT),
    "list of a long string": ("{{ (big ~ big ~ big ~ big ~ big ~ big)|list|length }}", LIMIT),
    "map calling center": ("{{ ['a']|map('center', 100000000)|list }}", LIMIT),
    "sum of lists": ("{{ ([[1] * 1000] * 1000)|sum(start=[])|length }}", LIMIT),
    # Values that share their parts: small in memory, huge once printed, compared or hashed.
    "shared list compared": (DAG + "{{ ns.a == ns.a }}", LIMIT),
    "shared list concatenated": (DAG + "{{ (ns.a ~ '')|length }}", LIMIT),
    "shared list pretty-printed": (DAG + "{{ ns.a|pprint|length }}", LIMIT),
    "shared tuple hashed": (
        "{% set ns = namespace(a=('x',)) %}{% for i in range(60) %}"
        "{% set ns.a = (ns.a, ns.a) %}{% endfor %}{{ {ns.a: 1} }}",
        LIMIT,
    ),
    # Output that Jinja joins itself: macros, set blocks, recursive loops.
    "macro doubling its output": (
        "{% macro d(n) %}{% if n %}{{ d(n-1) }}{{ d(n-1) }}{% else %}{{ big }}{% endif %}"
        "{% endmacro %}{{ d(25)|length }}",
        LIMIT,
    ),
    "set block filled in a loop": (
        "{% set x %}{% for i in range(100000) %}" + "L" * 1000 + "{% endfor %}{% endset %}"
        "{{ x|length }}",
        LIMIT,
    ),
    "recursive loop": (
        "{% for x in items recursive %}{% if loop.depth < 6 %}{{ loop(items) }}{% endif %}"
        "{% endfor %}",
        LIMIT,
    ),
    "slow test in a long loop": (
        "{% for i in range(100000) %}{% for j in zeros %}{% if 'zz' in big %}{% endif %}"
        "{% endfor %}{% endfor %}",
        LIMIT,
    ),
}


def _state() -> dict[str, Any]:
    return {"big": "x" * 1_000_000, "items": list(range(100)), "zeros": [0] * 500}


@pytest.mark.parametrize(("source", "code"), BOMBS.values(), ids=BOMBS.keys())
def test_a_bomb_is_stopped_with_a_named_error_in_time_and_memory(source: str, code: str) -> None:
    state = _state()
    outcome = run_bounded(lambda: render_template(source, state, node_id="n1"))

    assert isinstance(outcome.error, TemplateRenderError), outcome.error
    assert outcome.error.code == code, outcome.error.message
    assert outcome.error.node_id == "n1"
    assert outcome.elapsed < DEADLINE + SLACK
    assert outcome.peak < MAX_GROWTH


def test_the_message_says_which_cap_and_which_setting_raises_it() -> None:
    with pytest.raises(TemplateLimitExceeded) as caught:
        render_template("{{ 'a'|center(100000000) }}", {})

    assert caught.value.limit == "template_max_value_bytes"
    assert "AGENTFLOW_TEMPLATE_MAX_VALUE_BYTES" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a'|center(60000000) }}",
        "{{ ('a'|center(6000000)) ~ 'b' }}",
        "{{ 'x' * 60000000 }}",
        "{% if ('a'|center(6000000)) %}{% endif %}",
    ],
)
def test_no_big_value_is_folded_into_the_compiled_template(source: str) -> None:
    code = ENV.compile(source, raw=True)

    assert len(code) < 5_000


def test_failed_renders_of_distinct_templates_leave_no_memory_behind() -> None:
    sources = [f"{{{{ 'a'|center({60_000_000 + i}) }}}}" for i in range(4)]

    def render_all() -> None:
        for source in sources:
            with pytest.raises(TemplateLimitExceeded):
                render_template(source, {})

    outcome = run_bounded(render_all)

    assert outcome.error is None
    assert outcome.peak < 5 * 1024 * 1024
