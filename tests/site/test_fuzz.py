"""Schemathesis against the WSGI app: every operation of /api/schema/, positive and negative
data, with an admin key and real objects behind the path ids. Every check it has must pass: no
5xx, no undocumented status code, content type, header or body.

Bounded: FUZZ_EXAMPLES (default 6) examples per operation and generation mode, no deadline.
`pytest tests/site/test_fuzz.py -s` prints the counts.
"""

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from agentflow_site.wsgi import application
from executions.models import Execution, Status
from schedules.models import Schedule
from sources.models import Source, SourceVersion
from tenants.models import Tenant
from tests.conftest import issue_key
from workflows.services import workflow_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
SPEC = {
    "name": "fuzzed",
    "start_node": "input",
    "nodes": [
        {"id": "input", "type": "input"},
        {
            "id": "answer",
            "type": "aggregator",
            "metadata": {"strategy": "template", "template": "You said: {{ user_input }}"},
        },
    ],
    "edges": [{"from": "input", "to": "answer"}],
}


# Schema-valid data may still be refused as 422: what JSON Schema cannot say (an edge naming a
# node that does not exist, an environment variable the tenant was not granted) the validator
# does, and the document declares that 422. Every other check keeps its defaults.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]


def config(api_key: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"ApiKeyAuth": {"api_key": api_key}}},
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
            # The parser refuses NUL (PostgreSQL cannot store it) with a 400 naming the field.
            "generation": {"allow-x00": False},
        }
    )


def real_ids(tenant: Tenant) -> dict[str, str]:
    """One of everything in the key's tenant; path parameter name → its id."""
    workflow = workflow_create(tenant=tenant, spec=SPEC, actor="key:setup")
    source = Source.objects.create(
        tenant=tenant, name="gpt", kind="openai", config={"model_name": "m"}
    )
    SourceVersion.objects.create(source=source, version=1, kind="openai", config=source.config)
    execution = Execution.objects.create(
        tenant=tenant,
        workflow=workflow,
        spec=SPEC,
        spec_digest="",
        workflow_name="fuzzed",
        status=Status.SUCCEEDED,  # finished: its event stream ends
    )
    schedule = Schedule.objects.create(tenant=tenant, workflow=workflow, cron="@hourly")
    return {
        "workflow_id": workflow.id,
        "schedule_id": schedule.id,
        "source_id": source.id,
        "execution_id": execution.id,
        "prefix": issue_key(tenant, "viewer", name="spare").prefix,
        "name": "0123456789abcdef.png",
        "version": "1",
        "to_version": "1",
    }


def modes(label: str) -> tuple[GenerationMode, ...]:
    """/workflows/validate reports an invalid spec in a 200 (`valid: false`, every problem):
    a schema-violating body is its input, not an error, so it gets positive data only."""
    if label == "POST /api/v1/workflows/validate":
        return (GenerationMode.POSITIVE,)
    return (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def order(method: str) -> int:
    """Deletes last, so the other operations find their objects."""
    return {"DELETE": 2, "POST": 1}.get(method.upper(), 0)


def test_the_fuzzer_finds_no_server_error_and_no_schema_violation(tenant: Tenant) -> None:
    key = issue_key(tenant, "admin", name="fuzzer", rate_limit="100000/minute")
    ids = real_ids(tenant)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=config(key.secret))
    requests: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    examples: dict[str, str] = {}
    skipped: list[str] = []

    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),  # type: ignore[union-attr]
        key=lambda operation: (order(operation.method), operation.path),
    )
    for operation in operations:
        path_parameters = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
        for mode in modes(operation.label):
            strategy = operation.as_strategy(
                generation_mode=mode,
                path_parameters=path_parameters,
            )

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                requests[case.operation.label] += 1
                response = case.call()
                statuses[response.status_code] += 1
                try:
                    case.validate_response(response)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        name = f"{type(failure).__name__} ({case.operation.label})"
                        failures[name] += 1
                        examples.setdefault(
                            name,
                            f"{case.method} {case.formatted_path} -> {response.status_code}: "
                            + str(failure.message)[:120].replace("\n", " ")
                            + " | "
                            + response.text[:300],
                        )

            try:
                run()
            except Unsatisfiable:  # nothing to make negative (no parameters, no body)
                skipped.append(f"{operation.label} ({mode.value})")

    print(f"\nschemathesis: {sum(requests.values())} requests, {len(requests)} operations")
    print(f"statuses: {dict(sorted(statuses.items()))}")
    print(f"no negative data possible for {len(skipped)}: {', '.join(skipped)}")
    print(f"failures: {sum(failures.values())}")
    for name, count in failures.most_common():
        print(f"  {count:4} {name}  e.g. {examples[name]}")
    assert not failures, dict(failures)
