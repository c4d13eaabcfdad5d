"""AgentFlow's own django-q2 schedules exist after every migrate, even if one was deleted."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from executions.periodic import PERIODIC


@pytest.mark.django_db(transaction=True)
def test_each_periodic_task_is_scheduled_and_comes_back_when_deleted() -> None:
    call_command("migrate", verbosity=0)  # nothing to apply; post_migrate still runs
    assert set(Schedule.objects.values_list("name", flat=True)) >= set(PERIODIC)
    Schedule.objects.filter(name="agentflow-deliver-webhooks").delete()
    Schedule.objects.filter(name="agentflow-fire-schedules").update(cron="*/5 * * * *")
    call_command("migrate", verbosity=0)
    back = Schedule.objects.get(name="agentflow-deliver-webhooks")
    assert back.func == "executions.tasks.deliver_webhooks" and back.cron == "* * * * *"
    assert Schedule.objects.get(name="agentflow-fire-schedules").cron == "*/5 * * * *"  # kept
    for name, fields in PERIODIC.items():
        assert Schedule.objects.get(name=name).func == fields["func"]
