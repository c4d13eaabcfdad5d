"""Grants bind each variable to where its value may go: checked by the validator, and again by
the run as the value is read, before anything is sent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runtime.compiler import compile_workflow
from runtime.context import RunContext
from runtime.grants import CredentialUse, GrantError, Grants, grant_entries, parse_grant
from runtime.runner import run_workflow
from runtime.spec import SourceSpec
from runtime.validation import ValidationOptions, validate_spec
from tests.runtime.factories import only, validate_text
from tests.runtime.http.servers import json_reply, serving

OPENAI = {"openai": "http://127.0.0.1:9/v1"}


def use(grants: Grants, kind: str, **config: Any) -> CredentialUse:
    (found,) = grants.uses(kind, config)
    return found


def refused(entries: list[Any], kind: str, **config: Any) -> str | None:
    grants = Grants.parse(entries)
    return grants.refusal(use(grants, kind, **config))


# --- the format ---------------------------------------------------------------------------------


def test_a_plain_name_and_a_prefix_keep_working() -> None:
    grants = Grants.parse(["OPENAI_API_KEY", "AGENTFLOW_T_ACME_*"])
    assert grants.names("OPENAI_API_KEY") and grants.names("AGENTFLOW_T_ACME_CRM")
    assert not grants.names("AGENTFLOW_T_GLOBEX_CRM") and not grants.names("OPENAI_API_KEY_2")


def test_bindings_parse_from_text_and_json() -> None:
    text = parse_grant("CRM_* @ http:crm.example.com | http:*.acme.io".replace(" ", ""))
    obj = parse_grant({"env": "CRM_*", "to": ["http:crm.example.com", "http:*.acme.io"]})
    assert text == obj
    assert [str(t) for t in text.targets or ()] == ["http:crm.example.com", "http:*.acme.io"]


def test_the_setting_takes_a_comma_list_or_a_json_list() -> None:
    assert grant_entries(" A@openai , B ,") == ["A@openai", "B"]
    assert grant_entries('["A@openai", {"env": "B", "to": "postgres"}]') == [
        "A@openai",
        {"env": "B", "to": "postgres"},
    ]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("*", "every variable"),
        ("CRM@http", "bind it to one: http:api.example.com"),
        ("KEY@azure_openai", "azure_openai:"),
        ("DSN@postgres:db.internal", "bind it to the kind alone: postgres"),
        ("KEY@oracle", "kinds: anthropic"),
        ("KEY@sqlite", "kinds:"),
        ("KEY@http:*", "host name"),
        ("KEY@http:https://api.example.com", "no scheme"),
        ("KEY@", "no target"),
        ({"env": "KEY", "to": 3}, "list of targets"),
        ({"name": "KEY"}, '"env"'),
        ('["KEY"', "does not parse"),
    ],
)
def test_a_grant_that_cannot_be_kept_is_refused_saying_how_to_write_it(
    entry: Any, says: str
) -> None:
    with pytest.raises(GrantError) as raised:
        grant_entries(entry) if isinstance(entry, str) else parse_grant(entry)
    assert says in str(raised.value)


# --- where a plain name may go -------------------------------------------------------------------


def test_a_plain_name_goes_to_a_providers_own_api_and_to_databases() -> None:
    assert refused(["K"], "openai", api_key_env="K") is None
    assert refused(["K"], "anthropic", api_key_env="K") is None
    assert refused(["K"], "postgres", connection_string_env="K") is None


def test_a_plain_name_never_goes_to_a_url_the_spec_chose() -> None:
    assert refused(["K"], "openai", api_key_env="K", base_url="https://evil.example/v1")
    assert refused(["K"], "http", base_url="https://api.example.com", token_env="K")
    assert refused(["K"], "azure_openai", endpoint="https://r.openai.azure.com", api_key_env="K")


def test_the_operators_base_url_is_a_fixed_destination_and_so_is_the_same_origin() -> None:
    grants = Grants.parse(["K"], OPENAI)
    assert grants.refusal(use(grants, "openai", api_key_env="K")) is None
    same = use(grants, "openai", api_key_env="K", base_url="http://127.0.0.1:9/v1/")
    assert same.fixed and grants.refusal(same) is None
    other_port = use(grants, "openai", api_key_env="K", base_url="http://127.0.0.1:10/v1")
    assert not other_port.fixed and grants.refusal(other_port)


# --- bound names ---------------------------------------------------------------------------------


def test_a_bound_name_goes_only_to_its_kinds_and_hosts() -> None:
    grants = ["K@openai", "CRM@http:crm.example.com|http:*.acme.io", "DSN@postgres"]
    assert refused(grants, "openai", api_key_env="K") is None
    assert refused(grants, "anthropic", api_key_env="K")
    assert refused(grants, "http", base_url="https://crm.example.com/api", token_env="CRM") is None
    assert refused(grants, "http", base_url="https://eu.api.acme.io", token_env="CRM") is None
    assert refused(grants, "http", base_url="https://acme.io", token_env="CRM")
    assert refused(grants, "http", base_url="https://crm.example.com.evil.io", token_env="CRM")
    assert refused(grants, "http", base_url="https://crm.example.com", password_env="DSN")
    assert refused(grants, "mysql", connection_string_env="DSN")


def test_an_oauth2_secret_is_bound_to_the_token_urls_host() -> None:
    grants = Grants.parse(["SECRET@http:login.example.com"])
    config = {
        "base_url": "https://api.example.com",
        "token_url": "https://login.example.com/token",
        "client_secret_env": "SECRET",
    }
    assert grants.refusal(use(grants, "http", **config)) is None
    moved = {**config, "token_url": "https://echo.evil.io/token"}
    assert "echo.evil.io" in (grants.refusal(use(grants, "http", **moved)) or "")


def test_several_grants_of_one_name_add_up() -> None:
    grants = ["K@openai", "K@http:api.example.com"]
    assert refused(grants, "openai", api_key_env="K") is None
    assert refused(grants, "http", base_url="https://api.example.com", api_key_env="K") is None
    message = refused(grants, "http", base_url="https://other.example.com", api_key_env="K")
    assert message is not None
    assert "openai sources at their provider's own address or" in message
    assert "other.example.com" in message


# --- validation ----------------------------------------------------------------------------------

CRM_SPEC: dict[str, Any] = {
    "name": "crm",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {"id": "crm", "type": "http", "metadata": {"source": "crm", "path": "/x"}},
    ],
    "edges": [{"from": "input", "to": "crm"}],
    "sources": [
        {
            "id": "crm",
            "kind": "http",
            "config": {
                "base_url": "https://echo.evil.io",
                "auth_method": "bearer",
                "token_env": "OPENAI_API_KEY",
            },
        }
    ],
}


def test_validation_refuses_a_granted_variable_sent_where_its_grant_does_not_bind_it() -> None:
    result, _ = validate_text(CRM_SPEC, grants=Grants.parse(["OPENAI_API_KEY@openai"]))
    error = only(result, "forbidden_secret_ref")
    assert error.path == "/sources/0/config/token_env"
    assert "echo.evil.io (an http source)" in error.message
    assert "openai sources at their provider's own address only" in error.message
    assert "OPENAI_API_KEY@http:echo.evil.io" in error.message


def test_validation_accepts_a_bound_use_and_still_refuses_an_ungranted_name() -> None:
    grants = Grants.parse(["OPENAI_API_KEY@http:echo.evil.io"])
    assert validate_text(CRM_SPEC, grants=grants)[0].valid
    other = Grants.parse(["CRM_TOKEN@http:echo.evil.io"])
    error = only(validate_text(CRM_SPEC, grants=other)[0], "forbidden_secret_ref")
    assert "may not use" in error.message  # the ungranted message, once, not a binding one too


def test_a_stored_source_is_checked_against_the_bindings_as_they_are_now() -> None:
    spec = {**CRM_SPEC, "sources": []}
    stored = CRM_SPEC["sources"][0]
    options = ValidationOptions(
        grants=Grants.parse(["OPENAI_API_KEY@openai"]),
        resolve_source=lambda ref: SourceSpec.model_validate(stored) if ref == "crm" else None,
    )
    error = only(validate_spec(spec, options), "forbidden_secret_ref")
    assert error.path == "/nodes/1/metadata/source"
    assert "stored source 'crm'" in error.message and "echo.evil.io" in error.message


# --- at call time --------------------------------------------------------------------------------


def _run(spec: dict[str, Any], ctx: RunContext) -> Any:
    result = validate_spec(spec)
    assert result.valid, result.errors
    return asyncio.run(run_workflow(compile_workflow(result), {"user_input": "x"}, ctx))


def test_the_run_refuses_to_read_a_credential_for_an_unbound_host_and_sends_nothing() -> None:
    with serving() as echo:
        echo.route("/x", lambda seen: json_reply(200, {"auth": seen.headers.get("authorization")}))
        spec = _local(echo.url)
        ctx = RunContext(
            env={"OPENAI_API_KEY": "sk-canary-0123456789"}.get,
            grants=Grants.parse(["OPENAI_API_KEY@openai"]),
            trusted_hosts=frozenset({"127.0.0.1"}),
        )
        outcome = _run(spec, ctx)
        assert echo.seen == []
    assert outcome.status == "failed"
    assert outcome.error["code"] == "forbidden_secret_ref"
    assert outcome.error["node_id"] == "crm"
    assert "sk-canary" not in str(outcome)


def test_the_run_reads_a_bound_credential_and_redacts_its_echo() -> None:
    with serving() as echo:
        echo.route("/x", lambda seen: json_reply(200, {"auth": seen.headers.get("authorization")}))
        ctx = RunContext(
            env={"CRM_TOKEN": "crm-canary-0123456789"}.get,
            grants=Grants.parse(["CRM_TOKEN@http:127.0.0.1"]),
            trusted_hosts=frozenset({"127.0.0.1"}),
        )
        outcome = _run(_local(echo.url, "CRM_TOKEN"), ctx)
        assert echo.seen[0].headers["authorization"] == "Bearer crm-canary-0123456789"
    assert outcome.status == "succeeded", outcome.error
    assert outcome.final_state["http_result"]["body"] == {"auth": "Bearer [redacted:CRM_TOKEN]"}


def _local(url: str, name: str = "OPENAI_API_KEY") -> dict[str, Any]:
    source = {**CRM_SPEC["sources"][0]}
    source["config"] = {
        **source["config"],
        "base_url": url,
        "token_env": name,
        "allowed_hosts": ["127.0.0.1"],
    }
    return {**CRM_SPEC, "sources": [source]}
