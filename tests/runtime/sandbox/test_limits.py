"""The operator's caps, the runtime's deadline, and caches bounded by the size of what they hold."""

from __future__ import annotations

import time

import pytest

from runtime.errors import TemplateLimitExceeded, TemplateRenderError
from runtime.sandbox import expressions, templates
from runtime.sandbox.cache import WeightedCache
from runtime.sandbox.limits import SandboxLimits, configure, evaluation_deadline, setting_name
from runtime.sandbox.templates import render_template
from tests.runtime.sandbox.conftest import SLACK

NESTED = "{% for a in x %}{% for b in x %}{% for c in x %}{% endfor %}{% endfor %}{% endfor %}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.001  # every reading moves time on a millisecond
        return self.now


def test_every_cap_names_its_setting() -> None:
    assert setting_name("template_max_steps") == "AGENTFLOW_TEMPLATE_MAX_STEPS"
    assert setting_name("rule_cache_bytes") == "AGENTFLOW_RULE_CACHE_BYTES"


@pytest.mark.parametrize("field", ["template_max_steps", "rule_max_seconds", "rule_cache_bytes"])
def test_a_cap_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=setting_name(field)):
        SandboxLimits(**{field: 0})


def test_a_deadline_set_by_the_runtime_stops_a_render() -> None:
    configure(SandboxLimits(template_max_steps=10**12, template_max_seconds=60))
    start = time.monotonic()
    with evaluation_deadline(start + 0.2), pytest.raises(TemplateLimitExceeded) as caught:
        render_template(NESTED, {"x": list(range(1000))}, node_id="n1")  # 1e9 steps

    assert caught.value.limit == "deadline"
    assert caught.value.node_id == "n1"
    assert "timeout_seconds" in caught.value.message
    assert time.monotonic() - start < 0.2 + SLACK


def test_a_deadline_already_past_stops_a_render_before_it_starts() -> None:
    with evaluation_deadline(time.monotonic() - 1), pytest.raises(TemplateLimitExceeded):
        render_template("{{ [1] }}", {})


def test_an_earlier_deadline_outside_holds_inside() -> None:
    configure(SandboxLimits(template_max_steps=10**12, template_max_seconds=60))
    start = time.monotonic()
    with (
        evaluation_deadline(start + 0.2),
        evaluation_deadline(start + 30),
        pytest.raises(TemplateLimitExceeded),
    ):
        render_template(NESTED, {"x": list(range(1000))})

    assert time.monotonic() - start < 0.2 + SLACK


def test_the_operators_time_cap_holds_without_a_deadline() -> None:
    clock = FakeClock()
    configure(SandboxLimits(template_max_steps=10**12, template_max_seconds=1.0), clock=clock)
    with pytest.raises(TemplateLimitExceeded) as caught:
        render_template(NESTED, {"x": list(range(1000))})

    assert caught.value.limit == "template_max_seconds"
    assert "AGENTFLOW_TEMPLATE_MAX_SECONDS" in caught.value.message


def test_a_lower_step_cap_refuses_a_smaller_loop() -> None:
    source = "{% for i in x %}{{ i }}{% endfor %}"
    assert render_template(source, {"x": list(range(900))})
    configure(SandboxLimits(template_max_steps=500))
    with pytest.raises(TemplateLimitExceeded) as caught:
        render_template(source, {"x": list(range(900))})

    assert caught.value.limit == "template_max_steps"


def test_the_output_cap_comes_from_the_settings_unless_the_caller_asks_for_less() -> None:
    configure(SandboxLimits(template_max_output_chars=50))
    with pytest.raises(TemplateLimitExceeded, match="AGENTFLOW_TEMPLATE_MAX_OUTPUT_CHARS"):
        render_template("{{ x }}", {"x": "y" * 51})
    with pytest.raises(TemplateLimitExceeded, match="more than 10 characters"):
        render_template("{{ x }}", {"x": "y" * 11}, max_chars=10)


@pytest.mark.parametrize(
    "source",
    [
        "{{ '{0.__class__}'.format_map({}) }}",
        "{{ {}['missing'] + 1 }}",
        "{{ 1 / 0 }}",
        "{{ 10 ** 5000 }}",  # printing it passes Python's 4300-digit bound
        "{{ 2.0 ** 10000 }}",
        "{{ x.y() }}",
        "{{ 'x'.join(5) }}",
        "{% for a, b in [1] %}{% endfor %}",
    ],
)
def test_a_template_that_fails_is_a_template_error_never_another_exception(source: str) -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render_template(source, {"x": {"y": 1}})

    assert caught.value.code in ("template_error", "template_limit")


def test_a_cache_evicts_by_the_weight_of_what_it_holds() -> None:
    cache: WeightedCache[int] = WeightedCache(lambda: 10_000, overhead=100)
    for i in range(20):
        cache.get(f"{i:04}" + "x" * 996, len)

    assert cache.weight <= 10_000
    assert len(cache) == 9
    assert cache.get("0019" + "x" * 996, lambda key: -1) == 1000  # the newest stayed


def test_a_value_too_heavy_for_the_cache_is_not_kept() -> None:
    cache: WeightedCache[int] = WeightedCache(lambda: 1_000, overhead=100)
    assert cache.get("x" * 5_000, len) == 5_000
    assert len(cache) == 0


def test_compiled_templates_are_kept_within_their_byte_budget() -> None:
    configure(SandboxLimits(template_cache_bytes=200_000))
    templates.clear_caches()
    for i in range(40):
        source = f"{{% if x == {i} %}}" + "text " * 2_000 + "{% endif %}"
        render_template(source, {"x": 0})
        assert templates.template_problem(source) is None

    assert templates._templates.weight <= 200_000
    assert templates._problems.weight <= 200_000
    templates.clear_caches()


def test_compiled_rules_are_kept_within_their_byte_budget() -> None:
    configure(SandboxLimits(rule_cache_bytes=20_000))
    expressions.clear_caches()
    for i in range(40):
        rule = f"x == {i} || " + " || ".join(["x == -1"] * 100)
        expressions.evaluate_rule(rule, {"x": 0})

    assert expressions._rules.weight <= 20_000
    expressions.clear_caches()
