"""A waiting run in the admin's run view: its question, the node's `waiting` state, and answer
buttons for staff who may change executions, calling the service the API calls."""

from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.utils import timezone

from executions.models import Execution, NodeRun, Status
from tenants.models import AuditEvent, Tenant
from tests.executions.test_approval import review_spec
from tests.executions.test_run_view import browser_of


def waiting_run(tenant: Tenant) -> Execution:
    now = timezone.now()
    execution = Execution.objects.create(
        tenant=tenant,
        spec=review_spec(),
        spec_digest="d" * 64,
        workflow_name="review-then-publish",
        mode="async",
        status=Status.WAITING,
        initial_state={"user_input": "the memo"},
        final_state={"user_input": "the memo"},
        started_at=now,
        waiting_for={
            "node_id": "review",
            "question": "Publish <b>the memo</b>?",
            "options": ["approve", "reject"],
            "on_expiry": "fail",
            "expires_at": None,
            "since": now.isoformat(),
            "interrupt_id": "i1",
        },
    )
    for node_id, status, at in (("input", "succeeded", 0), ("review", "waiting", 5)):
        NodeRun.objects.create(
            execution=execution,
            node_id=node_id,
            node_type="x",
            status=status,
            started_at=now + timedelta(milliseconds=at),
            duration=0.001,
        )
    return execution


@pytest.mark.django_db
def test_the_run_view_shows_the_question_and_answers_it(tenant: Tenant) -> None:
    execution = waiting_run(tenant)
    page = f"/admin/executions/execution/{quote(execution.id)}/change/"
    viewer = browser_of("view_execution").get(page).content.decode()
    assert "Waiting for an answer" in viewer
    assert "Publish &lt;b&gt;the memo&lt;/b&gt;?" in viewer  # escaped: it is tenant text
    assert 'class="af-status af-status-waiting"' in viewer
    assert "af-state-waiting" in viewer  # the review node in the graph
    assert 'name="answer"' not in viewer  # a viewer may not answer

    operator = browser_of("view_execution", "change_execution")
    shown = operator.get(page).content.decode()
    assert 'name="answer" value="approve"' in shown and 'value="reject"' in shown
    url = f"/admin/executions/execution/{quote(execution.id)}/resume/"
    assert browser_of("view_execution").post(url, {"answer": "approve"}).status_code == 403
    refused = operator.post(url, {"answer": "maybe"}, follow=True).content.decode()
    assert "Answer one of: approve, reject." in refused
    done = operator.post(url, {"answer": "reject", "comment": "not now"}, follow=True)
    assert "Answered: the run goes on." in done.content.decode()
    execution.refresh_from_db()
    assert execution.status == Status.QUEUED
    assert execution.answer is not None
    assert execution.answer["answer"] == "reject" and execution.answer["comment"] == "not now"
    assert execution.answer["by"].startswith("user:")
    assert AuditEvent.objects.filter(action="execution.resume", target_id=execution.id).exists()
