from django.db import migrations


def schedule_reaper(apps, schema_editor):
    schedule = apps.get_model("django_q", "Schedule")
    schedule.objects.get_or_create(
        name="agentflow-reap-stale-runs",
        defaults={"func": "executions.tasks.reap_stale_runs", "schedule_type": "I", "minutes": 1,
                  "repeats": -1},
    )


def unschedule_reaper(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="agentflow-reap-stale-runs").delete()


class Migration(migrations.Migration):
    dependencies = [("executions", "0004_checkpoint_tables"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(schedule_reaper, unschedule_reaper)]
