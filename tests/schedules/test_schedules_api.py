"""Cron schedules of stored workflows: CRUD through the API, and ticks fired on a frozen clock
(exactly once each, missed ticks collapsed into one run, pauses and deletes honoured)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django_q.models import Schedule as QSchedule

from executions.models import Execution, Status
from schedules import cron
from schedules.models import Schedule, ScheduleTick
from schedules.services import schedule_fire, schedules_fire_due
from schedules.tasks import fire_due_schedules
from tenants.models import AuditEvent
from tests.conftest import IssuedKey, client_for
from tests.workflows.test_workflows_api import create, greeter

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)


def url(workflow_id: str, schedule_id: str = "") -> str:
    base = f"/api/v1/workflows/{workflow_id}/schedules"
    return f"{base}/{schedule_id}" if schedule_id else base


def add(key: IssuedKey, workflow_id: str, **body: Any) -> Any:
    body.setdefault("cron", "*/5 * * * *")
    body.setdefault("initial_state", {"user_input": "tick"})
    return client_for(key).post(url(workflow_id), body, format="json")


def added(key: IssuedKey, workflow_id: str, **body: Any) -> dict[str, Any]:
    response = add(key, workflow_id, **body)
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def workflow(developer_key: IssuedKey) -> str:
    return str(create(developer_key)["id"])


def starting_at(schedule_id: str, when: datetime) -> None:
    """As if the schedule had been made just before `when` (its first tick due then)."""
    Schedule.objects.filter(pk=schedule_id).update(next_run_at=when)


def runs_of(schedule_id: str) -> list[Execution]:
    return list(Execution.objects.filter(created_by=f"schedule:{schedule_id}"))


# --- the API ------------------------------------------------------------------------------------


def test_a_schedule_is_created_listed_read_and_shows_its_next_tick(
    developer_key: IssuedKey, viewer_key: IssuedKey, workflow: str
) -> None:
    response = add(developer_key, workflow, cron="0 9 * * *", timezone="Europe/Paris")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("sch_")
    assert response["Location"] == url(workflow, body["id"])
    assert body["workflow"] == workflow
    assert body["paused"] is False and body["version"] is None
    next_run = datetime.fromisoformat(body["next_run_at"])
    assert next_run.astimezone(UTC).hour in (7, 8)  # 9:00 in Paris, winter or summer
    listed = client_for(viewer_key).get(url(workflow)).json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]
    one = client_for(viewer_key).get(url(workflow, body["id"]))
    assert one.status_code == 200 and one.json()["cron"] == "0 9 * * *"
    assert AuditEvent.objects.filter(action="schedule.create", target_id=body["id"]).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "not a cron"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * * *"}, "cron"),  # six fields (seconds): not taken
        ({"cron": "0 0 31 2 *"}, "cron"),  # never fires
        ({"cron": "*/5 * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "*/5 * * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"cron": "*/5 * * * *", "version": 7}, "version"),
    ],
)
def test_a_bad_cron_time_zone_or_version_is_a_422_naming_it(
    developer_key: IssuedKey, workflow: str, body: dict[str, Any], field: str
) -> None:
    response = add(developer_key, workflow, **body)
    assert response.status_code == 422, response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert not Schedule.objects.exists()


def test_a_cron_more_often_than_the_operators_minimum_is_refused(
    developer_key: IssuedKey, workflow: str, settings: Any
) -> None:
    settings.AGENTFLOW_SCHEDULE_MIN_INTERVAL_SECONDS = 300
    response = add(developer_key, workflow, cron="0,1 * * * *")
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (
        error["field"] == "cron" and "AGENTFLOW_SCHEDULE_MIN_INTERVAL_SECONDS" in error["message"]
    )
    assert add(developer_key, workflow, cron="*/5 * * * *").status_code == 201


def test_a_tenant_keeps_at_most_the_operators_number_of_schedules(
    developer_key: IssuedKey, workflow: str, settings: Any
) -> None:
    settings.AGENTFLOW_SCHEDULE_MAX_PER_TENANT = 2
    added(developer_key, workflow)
    added(developer_key, workflow)
    response = add(developer_key, workflow)
    assert response.status_code == 409
    assert "AGENTFLOW_SCHEDULE_MAX_PER_TENANT" in response.json()["detail"]


def test_a_body_of_the_wrong_shape_is_a_400_naming_the_field(
    developer_key: IssuedKey, workflow: str
) -> None:
    response = add(developer_key, workflow, initial_state=["not", "an", "object"])
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["initial_state"]


def test_roles_and_tenants(
    viewer_key: IssuedKey,
    executor_key: IssuedKey,
    developer_key: IssuedKey,
    other_admin_key: IssuedKey,
    workflow: str,
) -> None:
    assert add(viewer_key, workflow).status_code == 403
    assert add(executor_key, workflow).status_code == 403
    schedule = added(developer_key, workflow)
    other = client_for(other_admin_key)
    assert other.get(url(workflow)).status_code == 404
    assert other.get(url(workflow, schedule["id"])).status_code == 404
    assert other.delete(url(workflow, schedule["id"])).status_code == 404
    assert client_for(viewer_key).delete(url(workflow, schedule["id"])).status_code == 403


def test_the_same_idempotency_key_gives_the_same_schedule(
    developer_key: IssuedKey, workflow: str
) -> None:
    client = client_for(developer_key)
    body = {"cron": "@hourly"}
    first = client.post(url(workflow), body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post(url(workflow), body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = client.post(url(workflow), {"cron": "@daily"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert Schedule.objects.count() == 1


def test_patch_changes_a_field_and_checks_it(developer_key: IssuedKey, workflow: str) -> None:
    schedule = added(developer_key, workflow)
    client = client_for(developer_key)
    changed = client.patch(url(workflow, schedule["id"]), {"cron": "@daily"}, format="json")
    assert changed.status_code == 200 and changed.json()["cron"] == "@daily"
    bad = client.patch(url(workflow, schedule["id"]), {"timezone": "Nowhere"}, format="json")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "timezone"
    assert client.get(url(workflow, schedule["id"])).json()["timezone"] == "UTC"


# --- firing on a frozen clock -------------------------------------------------------------------


def test_a_tick_fires_exactly_once_however_often_the_sweep_runs(
    developer_key: IssuedKey, workflow: str
) -> None:
    schedule = added(developer_key, workflow, cron="*/5 * * * *")
    starting_at(schedule["id"], datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    [first] = schedules_fire_due(now=T0)
    assert schedules_fire_due(now=T0) == []
    assert schedules_fire_due(now=T0 + timedelta(minutes=1)) == []  # the same tick, later
    assert schedule_fire(schedule_id=schedule["id"], now=T0) is None  # asked directly, too
    [run] = runs_of(schedule["id"])
    assert run.id == first and run.status == Status.QUEUED and run.mode == "async"
    assert run.initial_state == {"user_input": "tick"} and run.workflow_id == workflow
    shown = client_for(developer_key).get(f"/api/v1/executions/{run.id}").json()
    assert shown["created_by"] == f"schedule:{schedule['id']}"
    after = client_for(developer_key).get(url(workflow, schedule["id"])).json()
    assert after["last_execution"] == run.id
    assert after["last_run_at"].startswith("2026-12-01T12:00:00")
    assert after["next_run_at"].startswith("2026-12-01T12:05:00")
    [second] = schedules_fire_due(now=datetime(2026, 12, 1, 12, 5, tzinfo=UTC))
    assert second != first and len(runs_of(schedule["id"])) == 2


def test_ticks_missed_while_no_sweep_ran_give_one_run(
    developer_key: IssuedKey, workflow: str
) -> None:
    schedule = added(developer_key, workflow, cron="*/5 * * * *")
    starting_at(schedule["id"], datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    three_hours_later = datetime(2026, 12, 1, 15, 2, tzinfo=UTC)  # 36 ticks missed
    assert len(schedules_fire_due(now=three_hours_later)) == 1
    assert schedules_fire_due(now=three_hours_later) == []
    [tick] = ScheduleTick.objects.filter(schedule_id=schedule["id"])
    assert tick.tick == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # the latest one, once
    assert len(runs_of(schedule["id"])) == 1
    stored = Schedule.objects.get(pk=schedule["id"])
    assert stored.next_run_at == datetime(2026, 12, 1, 15, 5, tzinfo=UTC)


def test_a_tick_in_a_time_zone_is_its_wall_clock_time(
    developer_key: IssuedKey, workflow: str
) -> None:
    winter, summer = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    assert cron.next_tick("0 9 * * *", "America/New_York", winter).hour == 14
    assert cron.next_tick("0 9 * * *", "America/New_York", summer).hour == 13
    schedule = added(developer_key, workflow, cron="0 9 * * *", timezone="America/New_York")
    starting_at(schedule["id"], datetime(2026, 12, 1, 14, 0, tzinfo=UTC))
    assert schedules_fire_due(now=datetime(2026, 12, 1, 13, 59, tzinfo=UTC)) == []
    assert len(schedules_fire_due(now=datetime(2026, 12, 1, 14, 0, tzinfo=UTC))) == 1
    [tick] = ScheduleTick.objects.filter(schedule_id=schedule["id"])
    assert tick.tick == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_a_paused_schedule_fires_nothing_and_a_resumed_one_skips_what_it_missed(
    developer_key: IssuedKey, workflow: str
) -> None:
    schedule = added(developer_key, workflow, cron="*/5 * * * *")
    client = client_for(developer_key)
    paused = client.patch(url(workflow, schedule["id"]), {"paused": True}, format="json")
    assert paused.status_code == 200
    assert paused.json()["paused"] is True and paused.json()["next_run_at"] is None
    assert schedules_fire_due(now=datetime(2030, 1, 1, tzinfo=UTC)) == []
    resumed = client.patch(url(workflow, schedule["id"]), {"paused": False}, format="json")
    assert resumed.json()["next_run_at"] is not None
    assert runs_of(schedule["id"]) == []


def test_a_deleted_schedule_fires_nothing(developer_key: IssuedKey, workflow: str) -> None:
    schedule = added(developer_key, workflow, cron="*/5 * * * *")
    starting_at(schedule["id"], datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    response = client_for(developer_key).delete(url(workflow, schedule["id"]))
    assert response.status_code == 204
    assert client_for(developer_key).get(url(workflow, schedule["id"])).status_code == 404
    assert schedules_fire_due(now=T0) == []
    assert runs_of(schedule["id"]) == []
    assert AuditEvent.objects.filter(action="schedule.delete", target_id=schedule["id"]).exists()


def test_a_pinned_version_runs_that_version(developer_key: IssuedKey, workflow: str) -> None:
    client_for(developer_key).put(
        f"/api/v1/workflows/{workflow}", {"spec": greeter("v2: {{ user_input }}")}, format="json"
    )
    schedule = added(developer_key, workflow, version=1)
    starting_at(schedule["id"], T0)
    [execution_id] = schedules_fire_due(now=T0)
    assert Execution.objects.get(pk=execution_id).workflow_version == 1


def test_a_tick_whose_workflow_no_longer_validates_records_why(
    developer_key: IssuedKey, workflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from schedules import services
    from workflows.services import WorkflowInvalid

    def refuse(**_: Any) -> Any:
        from runtime.errors import SpecError
        from runtime.validation import ValidationResult

        error = SpecError("unknown_source", "Source 'gone' does not exist.", "/sources/0")
        raise WorkflowInvalid(ValidationResult(errors=[error], warnings=[]))

    monkeypatch.setattr(services, "execution_start", refuse)
    schedule = added(developer_key, workflow)
    starting_at(schedule["id"], T0)
    assert schedules_fire_due(now=T0) == []
    shown = client_for(developer_key).get(url(workflow, schedule["id"])).json()
    assert shown["last_error"]["code"] == "invalid_workflow"
    assert "gone" in shown["last_error"]["message"]
    assert shown["next_run_at"] > T0.isoformat()  # it moves on to its next tick


def test_the_sweep_is_on_django_q2s_minute_schedule(developer_key: IssuedKey) -> None:
    sweep = QSchedule.objects.get(name="agentflow-fire-schedules")
    assert sweep.func == "schedules.tasks.fire_due_schedules"
    assert sweep.schedule_type == QSchedule.CRON and sweep.cron == "* * * * *"
    assert fire_due_schedules() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_sweeps_racing_in_several_threads_fire_a_tick_once(developer_key: IssuedKey) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    workflow_id = str(create(developer_key)["id"])
    schedules = [added(developer_key, workflow_id)["id"] for _ in range(5)]
    Schedule.objects.update(next_run_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC))

    def sweep(_: int) -> list[str]:
        try:
            return schedules_fire_due(now=T0)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        queued = [e for found in pool.map(sweep, range(8)) for e in found]
    assert len(queued) == len(set(queued)) == 5
    assert sorted(ScheduleTick.objects.values_list("schedule_id", flat=True)) == sorted(schedules)


def test_pausing_a_schedule_whose_cron_the_operator_has_since_outlawed_still_works(
    developer_key: IssuedKey, workflow: str, settings: Any
) -> None:
    schedule = added(developer_key, workflow, cron="*/5 * * * *")
    settings.AGENTFLOW_SCHEDULE_MIN_INTERVAL_SECONDS = 3600
    client = client_for(developer_key)
    paused = client.patch(url(workflow, schedule["id"]), {"paused": True}, format="json")
    assert paused.status_code == 200, paused.json()
    moved = client.patch(url(workflow, schedule["id"]), {"cron": "*/10 * * * *"}, format="json")
    assert moved.status_code == 422 and moved.json()["errors"][0]["field"] == "cron"
