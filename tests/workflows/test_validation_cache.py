"""A validation result is reused only while nothing it depends on has changed."""

from collections.abc import Iterator
from typing import Any

import pytest

from runtime.validation import ValidationResult
from sources.models import Source
from sources.services import source_create, source_delete, source_update
from tenants.models import Tenant
from workflows import cache
from workflows.services import workflow_validate

pytestmark = pytest.mark.django_db
KEY_VAR = "AGENTFLOW_T_ACME_OPENAI"


@pytest.fixture(autouse=True)
def empty_cache(settings: Any) -> Iterator[None]:
    settings.AGENTFLOW_VALIDATION_CACHE_SECONDS = 300
    cache.clear()
    cache.STATS.reset()
    yield
    cache.clear()


@pytest.fixture
def granted(tenant: Tenant) -> Tenant:
    tenant.allowed_env = [KEY_VAR]
    tenant.save()
    return tenant


def llm_spec(source: str = "gpt", *, inline: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "cached",
        "start_node": "input",
        "nodes": [
            {"id": "input", "type": "input"},
            {"id": "write", "type": "llm", "metadata": {"source": source, "prompt": "Hi"}},
        ],
        "edges": [{"from": "input", "to": "write"}],
    }
    if inline:
        config = {"model_name": "gpt-4o-mini", "api_key_env": KEY_VAR}
        spec["sources"] = [{"id": source, "kind": "openai", "config": config}]
    return spec


def stored_gpt(tenant: Tenant, model: str = "gpt-4o-mini") -> Source:
    return source_create(
        tenant=tenant,
        name="gpt",
        kind="openai",
        config={"model_name": model, "api_key_env": KEY_VAR},
        description="",
        actor="test",
    )


def error_types(result: ValidationResult) -> list[str]:
    return [e.type for e in result.errors]


def test_the_same_spec_for_the_same_tenant_is_served_from_the_cache(granted: Tenant) -> None:
    stored_gpt(granted)
    first = workflow_validate(spec=llm_spec(), tenant=granted)
    again = workflow_validate(spec=llm_spec(), tenant=granted)
    assert first.valid and again is first
    assert (cache.STATS.hits, cache.STATS.misses) == (1, 1)


def test_json_text_and_parsed_json_are_kept_apart(granted: Tenant) -> None:
    text = '{"name": "x",\n "nodes": []}'
    from_text = workflow_validate(spec=text, tenant=granted)
    from_dict = workflow_validate(spec={"name": "x", "nodes": []}, tenant=granted)
    assert from_text.errors[0].line is not None
    assert from_dict.errors[0].line is None


def test_a_grant_withdrawn_from_the_tenant_is_refused_at_once(granted: Tenant) -> None:
    assert workflow_validate(spec=llm_spec(inline=True), tenant=granted).valid
    granted.allowed_env = []
    granted.save()
    result = workflow_validate(spec=llm_spec(inline=True), tenant=granted)
    assert error_types(result) == ["forbidden_secret_ref"]


def test_a_grant_withdrawn_by_the_operator_is_refused_at_once(
    tenant: Tenant, settings: Any
) -> None:
    settings.AGENTFLOW_ALLOWED_ENV = [KEY_VAR]
    assert workflow_validate(spec=llm_spec(inline=True), tenant=tenant).valid
    settings.AGENTFLOW_ALLOWED_ENV = []
    result = workflow_validate(spec=llm_spec(inline=True), tenant=tenant)
    assert error_types(result) == ["forbidden_secret_ref"]


def test_a_changed_operator_limit_gives_a_fresh_result(granted: Tenant, settings: Any) -> None:
    assert workflow_validate(spec=llm_spec(inline=True), tenant=granted).valid
    settings.AGENTFLOW_MAX_SPEC_NODES = 1
    result = workflow_validate(spec=llm_spec(inline=True), tenant=granted)
    assert error_types(result) == ["spec_too_large"]


def test_a_changed_stored_source_is_what_the_next_validation_uses(granted: Tenant) -> None:
    source = stored_gpt(granted)
    first = workflow_validate(spec=llm_spec(), tenant=granted)
    assert first.sources["gpt"].config["model_name"] == "gpt-4o-mini"
    source_update(
        source=source,
        changes={"config": {"model_name": "gpt-4.1", "api_key_env": KEY_VAR}},
        actor="test",
    )
    again = workflow_validate(spec=llm_spec(), tenant=granted)
    assert again.valid
    assert again.sources["gpt"].config["model_name"] == "gpt-4.1"
    assert cache.STATS.stale == 1


def test_a_stored_source_of_another_kind_now_is_a_kind_mismatch(granted: Tenant) -> None:
    source = stored_gpt(granted)
    assert workflow_validate(spec=llm_spec(), tenant=granted).valid
    config = {"base_url": "https://crm.example.com"}
    source_update(source=source, changes={"kind": "http", "config": config}, actor="test")
    result = workflow_validate(spec=llm_spec(), tenant=granted)
    assert "source_kind_mismatch" in error_types(result)


def test_a_stored_source_changed_behind_the_services_back_is_seen_too(granted: Tenant) -> None:
    source = stored_gpt(granted)
    assert workflow_validate(spec=llm_spec(), tenant=granted).valid
    Source.objects.filter(pk=source.pk).update(kind="http")
    result = workflow_validate(spec=llm_spec(), tenant=granted)
    assert "source_kind_mismatch" in error_types(result)


def test_a_deleted_stored_source_is_unknown_at_once(granted: Tenant) -> None:
    source = stored_gpt(granted)
    assert workflow_validate(spec=llm_spec(), tenant=granted).valid
    source_delete(source=source, actor="test")
    result = workflow_validate(spec=llm_spec(), tenant=granted)
    assert error_types(result) == ["unknown_source"]


def test_a_stored_source_created_after_a_refusal_is_found(granted: Tenant) -> None:
    assert error_types(workflow_validate(spec=llm_spec(), tenant=granted)) == ["unknown_source"]
    stored_gpt(granted)
    assert workflow_validate(spec=llm_spec(), tenant=granted).valid


def test_changed_trusted_hosts_give_a_fresh_result(granted: Tenant) -> None:
    first = workflow_validate(spec=llm_spec(inline=True), tenant=granted)
    granted.trusted_hosts = ["10.0.0.5:8000"]
    granted.save()
    again = workflow_validate(spec=llm_spec(inline=True), tenant=granted)
    assert again.valid and again is not first
    assert cache.STATS.hits == 0


def test_another_tenant_never_gets_this_tenants_result(
    granted: Tenant, other_tenant: Tenant
) -> None:
    stored_gpt(granted)
    assert workflow_validate(spec=llm_spec(), tenant=granted).valid
    theirs = workflow_validate(spec=llm_spec(), tenant=other_tenant)
    assert error_types(theirs) == ["unknown_source"]
    other_tenant.allowed_env = [KEY_VAR]
    other_tenant.save()
    mine = workflow_validate(spec=llm_spec(inline=True), tenant=granted)
    assert workflow_validate(spec=llm_spec(inline=True), tenant=other_tenant) is not mine
    assert cache.STATS.hits == 0


def test_with_the_setting_at_0_nothing_is_cached(granted: Tenant, settings: Any) -> None:
    settings.AGENTFLOW_VALIDATION_CACHE_SECONDS = 0
    first = workflow_validate(spec=llm_spec(inline=True), tenant=granted)
    again = workflow_validate(spec=llm_spec(inline=True), tenant=granted)
    assert first.valid and again.valid and again is not first
    assert (cache.STATS.hits, cache.STATS.misses, cache.STATS.uncached) == (0, 0, 2)
    granted.allowed_env = []
    granted.save()
    settings.AGENTFLOW_VALIDATION_CACHE_SECONDS = 300
    refused = workflow_validate(spec=llm_spec(inline=True), tenant=granted)
    assert error_types(refused) == ["forbidden_secret_ref"]


def test_a_result_expires(granted: Tenant) -> None:
    now = [0.0]

    def validate(_resolve: Any) -> ValidationResult:
        return ValidationResult([], [])

    def cached() -> ValidationResult:
        return cache.cached_validation(
            spec={"n": 1}, tenant=granted, only_node=None, validate=validate, clock=lambda: now[0]
        )

    first = cached()
    now[0] = 299.0
    assert cached() is first
    now[0] = 300.0
    assert cached() is not first


def test_a_spec_that_is_not_json_is_validated_every_time(granted: Tenant) -> None:
    spec = {"name": {1, 2}}
    assert not workflow_validate(spec=spec, tenant=granted).valid
    assert cache.STATS.uncached == 1
